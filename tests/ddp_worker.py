"""Run by the DDP test in each of 2 processes: the real Trainer, the real GAN step, gloo on CPU."""

import os


def run(rank: int, world: int, port: int, out: str, dump: str, data_dir: str) -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), INKDIGITS_DATA_DIR=data_dir)
    import torch.distributed as dist

    from inkdigits.models import GANConfig
    from inkdigits.train import Trainer

    cfg = GANConfig(g_width=8, d_width=8, batch_size=32, epochs=2, eval_per_class=0)
    trainer = Trainer(cfg, out, device="cpu", limit=256, quiet=True)
    trainer.train()
    torch.save({"G": trainer.G.state_dict(), "D": trainer.D.state_dict(), "G_ema": trainer.G_ema.state_dict(),
                "steps": trainer.step}, f"{dump}/rank{rank}.pt")
    dist.destroy_process_group()
