"""One DDP rank for the DDP test (RANK, WORLD_SIZE, MASTER_* come from the environment, as under torchrun):
the real training loop and GAN step, gloo on CPU."""


def main(out: str, dump: str) -> None:
    import os

    import torch
    from conftest import TINY_MODEL

    from inkdigits import distributed
    from inkdigits.train import train

    torch.set_num_threads(1)
    # R1 (applied at step 0) takes its gradients past DDP's hooks: the test checks they are averaged too. Class
    # guidance makes the other rank wait for rank 0's classifier; bCR adds views to D's one forward.
    tiny = {**TINY_MODEL, "batch_size": 32, "epochs": 2, "eval_per_class": 0, "limit": 256, "val_size": 64,
            "eval_every": 8, "r1_gamma": 1.0, "guidance": 0.1, "consistency": 1.0}  # fmt: skip
    result = train(out, tiny, device="cpu", quiet=True)
    gan = result.gan
    torch.save({"G": gan.G.state_dict(), "D": gan.D.state_dict(), "G_ema": gan.G_ema.state_dict(), "steps": gan.step},
               f"{dump}/rank{os.environ['RANK']}.pt")  # fmt: skip
    distributed.teardown()
