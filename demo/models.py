"""The demo's models: one SCDM and/or one SDM pipeline in their display slots, checked to share one label space."""
from __future__ import annotations

from dataclasses import dataclass

from scdm.pipeline import Pipeline

from .classes import ClassTable


@dataclass(frozen=True)
class Models:
    """The pipelines side by side (either may be absent) and the label space they share."""

    scdm: Pipeline | None
    sdm: Pipeline | None
    table: ClassTable
    size: int  # model resolution in px

    @classmethod
    def of(cls, *pipes: Pipeline) -> Models:
        """Sort pipelines into the SCDM and SDM slots and check that they read the same labels."""
        scdm = [p for p in pipes if p.is_scdm]
        sdm = [p for p in pipes if not p.is_scdm]
        if not pipes or len(scdm) > 1 or len(sdm) > 1:
            raise ValueError(f"give one SCDM and/or one SDM model; got {len(scdm)} SCDM and {len(sdm)} SDM "
                             f"(an SCDM checkpoint has a label-diffusion schedule, SDM has 'none')")
        first = pipes[0]
        for p in pipes[1:]:
            a, b = first.card, p.card
            if (a.labels.raw_ids, a.labels.num_classes, a.labels.unlabeled_id, a.labels.unlabeled_to_null) != \
                    (b.labels.raw_ids, b.labels.num_classes, b.labels.unlabeled_id, b.labels.unlabeled_to_null):
                raise ValueError(f"{a.name!r} and {b.name!r} use different label encodings; compare models "
                                 f"trained on the same dataset")
            if a.unet.image_size != b.unet.image_size:
                raise ValueError(f"{a.name!r} works at {a.unet.image_size} px and {b.name!r} at "
                                 f"{b.unet.image_size} px; compare models of one resolution")
        return cls(scdm[0] if scdm else None, sdm[0] if sdm else None,
                   ClassTable.from_spec(first.card.labels), first.card.unet.image_size)

    def slots(self) -> list[tuple[str, Pipeline | None]]:
        """[("SCDM", pipe or None), ("SDM", pipe or None)] in display order."""
        return [("SCDM", self.scdm), ("SDM", self.sdm)]

    @property
    def primary(self) -> Pipeline:
        """The model whose schedule the explainer shows (SCDM when present)."""
        return self.scdm or self.sdm  # type: ignore[return-value]

    def names(self) -> dict[str, str]:
        return {slot: (p.card.name or "unnamed") for slot, p in self.slots() if p is not None}
