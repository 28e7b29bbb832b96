"""Train a small forecaster with ``strategy=ddp`` on 2 CPU processes (gloo), or in one process
on the same global batch; called by ``test_ddp.py`` as a script (DDP re-launches it).

    python ddp_fit.py OUT_DIR ddp|single
"""

import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from datamodules import TimeSeriesDataModule, load_etth1  # noqa: E402
from titans_seq import ForecastingModule  # noqa: E402
from titans_seq.training import quiet_lightning  # noqa: E402

GLOBAL_BATCH, STEPS = 16, 4


class CountBatches(pl.Callback):
    def __init__(self) -> None:
        self.batches, self.origins = 0, []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_index) -> None:
        self.batches += 1
        self.origins.append(batch["origin"].tolist())


def main(out: Path, mode: str) -> None:
    torch.set_num_threads(1)
    processes = 2 if mode == "ddp" else 1
    pl.seed_everything(0, verbose=False)
    # 1201 rows: 110 validation windows, an even number, so no rank repeats one to even out.
    data = TimeSeriesDataModule(load_etth1().iloc[:1201], mode="window", lookback=24, horizon=12,
                                batch_size=GLOBAL_BATCH // processes, eval_batch_size=64,
                                seed=0)  # ranks take interleaved shards of one order
    model = ForecastingModule(mode="window", lookback=24, horizon=12, patch_len=8, dim=16, depth=1,
                              memory_heads=2, chunk_size=2, dropout=0.0)
    counter = CountBatches()
    checkpoints = pl.callbacks.ModelCheckpoint(dirpath=out / f"checkpoints_{mode}",
                                               save_last=False, save_top_k=1,
                                               monitor="val_mse")
    with quiet_lightning():
        trainer = pl.Trainer(accelerator="cpu", devices=processes,
                             strategy="ddp" if mode == "ddp" else "auto", max_steps=STEPS,
                             val_check_interval=STEPS, logger=False,
                             enable_progress_bar=False,
                             enable_model_summary=False, num_sanity_val_steps=0,
                             callbacks=[counter, checkpoints])
        trainer.fit(model, data)
    rank = trainer.global_rank
    (out / f"{mode}_rank{rank}.json").write_text(json.dumps({
        "batches": counter.batches, "world_size": trainer.world_size,
        "origins": counter.origins,
        "val_mse": float(trainer.callback_metrics["val_mse"])}))
    if rank == 0:
        torch.save(model.state_dict(), out / f"{mode}_weights.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
