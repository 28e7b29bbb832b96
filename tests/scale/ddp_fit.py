"""Train a small forecaster with ``strategy=ddp`` on 2 CPU processes (gloo), or in one process
on the same global batch; called by ``test_ddp.py`` as a script (DDP re-launches it).

    python ddp_fit.py OUT_DIR ddp|single [window|stream]

``window``: fixed windows, the global batch split between the ranks; ``stream``: the long-memory
mode, the lanes (channels) split between the ranks, each rank reading its lanes' segments in
time order with its memory state carried.
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
        key = "lane" if "lane" in batch else "origin"
        self.origins.append(batch[key].tolist())


def main(out: Path, mode: str, kind: str = "window") -> None:
    torch.set_num_threads(1)
    processes = 2 if mode == "ddp" else 1
    pl.seed_everything(0, verbose=False)
    if kind == "stream":
        # 4 channels: 2 lanes per rank, so the ranks' mean losses weigh alike
        data = TimeSeriesDataModule(load_etth1().iloc[:1201, :5], lookback=24, horizon=12,
                                    linear_lookback=48, patch_len=8, segment_tokens=8,
                                    batch_size=4 // processes, eval_batch_size=4 // processes,
                                    seed=0)
        model = ForecastingModule(lookback=24, horizon=12, linear_lookback=48, patch_len=8,
                                  segment_tokens=8, dim=16, depth=1, memory_heads=2,
                                  chunk_size=2, dropout=0.0, head_dropout=0.0)
    else:
        # 1201 rows: 110 validation windows, an even number: no rank repeats one to even out.
        data = TimeSeriesDataModule(load_etth1().iloc[:1201], mode="window", lookback=24,
                                    horizon=12, batch_size=GLOBAL_BATCH // processes,
                                    eval_batch_size=64,
                                    seed=0)  # ranks take interleaved shards of one order
        model = ForecastingModule(mode="window", lookback=24, horizon=12, patch_len=8, dim=16,
                                  depth=1, memory_heads=2, chunk_size=2, dropout=0.0,
                                  head_dropout=0.0)
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
    main(Path(sys.argv[1]), sys.argv[2], *sys.argv[3:])
