"""What G and D pay beyond the GAN loss: the mode-seeking term, class guidance, consistency regularisation (bCR),
and D's dropout."""

import torch
from conftest import TINY_MODEL, synthetic_arrays

from inkdigits.augment import augment
from inkdigits.config import ModelConfig, TrainConfig
from inkdigits.gan import ConditionalGAN, mode_seeking
from inkdigits.models import to_unit


def test_the_mode_seeking_term_pays_g_for_using_its_noise():
    z = torch.randn(8, 16)
    same = torch.zeros(8, 1, 28, 28)  # a generator that ignores its noise: every image alike
    varied = torch.rand(8, 1, 28, 28) * 2 - 1
    assert mode_seeking(same, z) > 100 * mode_seeking(varied, z)


def test_the_mode_seeking_pairs_share_their_classes_and_g_learns_from_the_term():
    gan = ConditionalGAN(ModelConfig(**TINY_MODEL), TrainConfig(augment="none", diversity=1.0))
    seen = []
    forward = gan.G_train.forward
    gan.G_train.forward = lambda z, y: seen.append(y.clone()) or forward(z, y)
    losses = gan.train_step(torch.randint(0, 256, (8, 28, 28), dtype=torch.uint8), torch.arange(8))
    assert torch.equal(seen[0][:4], seen[0][4:]) and torch.isfinite(losses["loss_g"])
    plain = ConditionalGAN(ModelConfig(**TINY_MODEL), TrainConfig(augment="none", diversity=0.0))
    assert plain.train_step(torch.randint(0, 256, (8, 28, 28), dtype=torch.uint8), torch.arange(8))["loss_g"] < losses["loss_g"]


def test_class_guidance_teaches_g_what_the_classifier_reads():
    """G, guided by a classifier that reads a class from the image's mean brightness, learns to draw that class."""

    class Brightness(torch.nn.Module):
        def forward(self, x):  # bright images are class 1, dark ones class 0
            return torch.cat([-x.mean((1, 2, 3))[:, None], x.mean((1, 2, 3))[:, None]], 1) * 10

    def trained(guidance):
        gan = ConditionalGAN(ModelConfig(**{**TINY_MODEL, "num_classes": 2}), TrainConfig(augment="none", guidance=guidance))
        gan.set_guide(Brightness())
        real = torch.full((16, 28, 28), 128, dtype=torch.uint8)  # real images say nothing about the class
        for _ in range(30):
            gan.train_step(real, torch.arange(16) % 2)
        gan.G.eval()
        with torch.no_grad():
            z = torch.randn(64, gan.model_config.latent_dim, generator=torch.Generator().manual_seed(0))
            return (gan.G(z, torch.ones(64, dtype=torch.long)).mean() - gan.G(z, torch.zeros(64, dtype=torch.long)).mean()).item()

    guided, plain = trained(1.0), trained(0.0)  # about 0.05 and 0.002
    assert guided > 0.02 and guided > 10 * abs(plain)


def test_consistency_teaches_d_to_score_an_augmented_view_like_the_image():
    x, y = torch.from_numpy(synthetic_arrays(n_train=32)["x_train"]), torch.arange(32) % 10

    def gap(weight):  # mean |D(view) - D(image)| on the real batch after 40 steps
        gan = ConditionalGAN(ModelConfig(**TINY_MODEL), TrainConfig(augment="none", consistency=weight, lr_d=2e-3, seed=1))
        for _ in range(40):
            gan.train_step(x, y)
        with torch.no_grad():
            real = to_unit(x)
            return (gan.D(augment(real, 1.0, torch.Generator().manual_seed(0)), y) - gan.D(real, y)).abs().mean().item()

    assert gap(10.0) < 0.6 * gap(0.0)  # about 0.21 against 0.55


def test_d_dropout_draws_its_masks_from_the_runs_noise_and_leaves_the_global_rng_alone():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 256, (16, 28, 28), dtype=torch.uint8, generator=gen), torch.arange(16) % 10

    def losses(dropout):
        gan = ConditionalGAN(ModelConfig(**TINY_MODEL, d_dropout=dropout), TrainConfig(augment="none"))
        torch.manual_seed(123)
        out = [gan.train_step(x, y)["loss_d"].item() for _ in range(3)]
        return out, torch.rand(1).item()

    (dropped, after), (again, after_again), (plain, after_plain) = losses(0.5), losses(0.5), losses(0.0)
    assert dropped == again and dropped != plain  # the same masks run to run: --resume stays exact
    assert after == after_again == after_plain
