"""The four dataloader hooks every titans-seq datamodule shares."""

from __future__ import annotations

from torch.utils.data import DataLoader


class RoleLoaders:
    """``{train,val,test,predict}_dataloader`` from one ``_loader(role)`` (an empty list when a
    role has no data, which Lightning skips)."""

    def _loader(self, role: str) -> DataLoader | list:
        raise NotImplementedError

    def train_dataloader(self) -> DataLoader | list:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader | list:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader | list:
        return self._loader("predict")
