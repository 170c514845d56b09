"""Classifier two-sample test: can a small CNN tell generated fields from reference ones?

Both sets are cut to the same size and split into training and held-out parts; a small
ResNet learns to label generated fields 1 and reference fields 0, and its scores on the
held-out parts give the ROC AUC. Held-out scores are independent of the training data,
so when the sets come from one distribution they are exchangeable between the two
held-out groups and the AUC has the exact Mann–Whitney null distribution: mean 1/2 and
variance ``(m + n + 1) / (12 m n)``; the one-sided p-value uses its normal approximation.
An AUC near 1/2 means the classifier found no difference, not that there is none.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn
from tqdm.auto import tqdm

from geodiff.errors import GeodiffError
from geodiff.metrics._checks import as_fields, as_seed, check_same_grid
from geodiff.rng import derive_seed

__all__ = ["ClassifierTestResult", "SmallResNet", "classifier_two_sample_test", "roc_auc"]

_SPLIT_STREAM, _INIT_STREAM, _SHUFFLE_STREAM = 0, 1, 2
_MIN_TEST = 2  # held-out fields per set


class _Block(nn.Module):
    """Two 3x3 conv-BatchNorm layers around a (projected) identity, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.skip(x))


class SmallResNet(nn.Module):
    """A small residual CNN giving one logit per field.

    A 3x3 conv stem, one residual block per entry of ``widths`` (the first at full
    resolution, each later one halving it with stride 2), global average pooling and a
    linear head. Normalisation is BatchNorm: per-sample normalisation (GroupNorm,
    LayerNorm) would divide out each field's amplitude, which is exactly what a
    variance error changes.

    Parameters
    ----------
    in_channels : int
    widths : tuple of int
        Channels of each residual stage.

    Shapes: input (B, in_channels, H, W), output (B,).
    """

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (16, 32, 32)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        blocks, c_in = [], widths[0]
        for k, c_out in enumerate(widths):
            blocks.append(_Block(c_in, c_out, stride=1 if k == 0 else 2))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.blocks(self.stem(x)).mean(dim=(-2, -1))
        return self.head(features).squeeze(-1)


@dataclass(frozen=True)
class ClassifierTestResult:
    """Outcome of :func:`classifier_two_sample_test`.

    Attributes
    ----------
    auc : float
        Held-out ROC AUC of "generated" against "reference" (1/2: indistinguishable).
    auc_se : float
        Standard error of the AUC under the null, ``sqrt((2 m + 1) / (12 m^2))``.
    z : float
        ``(auc - 1/2) / auc_se``.
    p_value : float
        One-sided p-value for ``auc > 1/2`` (normal approximation).
    train_accuracy : float
        Accuracy on the training part at the end of training (threshold at logit 0).
    test_accuracy : float
        The same on the held-out part.
    n_train, n_test : int
        Fields per set used for training and held out (``m = n_test``).
    epochs : int
    seed : int
    """

    auc: float
    auc_se: float
    z: float
    p_value: float
    train_accuracy: float
    test_accuracy: float
    n_train: int
    n_test: int
    epochs: int
    seed: int

    def to_dict(self) -> dict:
        """The fields as a plain dict."""
        return asdict(self)


def roc_auc(scores_pos, scores_neg) -> float:
    """ROC AUC through the Mann–Whitney U statistic, ties counting 1/2.

    ``AUC = P(S_pos > S_neg) + P(S_pos = S_neg) / 2`` over all pairs, exactly.

    Parameters
    ----------
    scores_pos : torch.Tensor or np.ndarray, shape (m,)
        Scores of the positive class (higher means "more positive").
    scores_neg : torch.Tensor or np.ndarray, shape (n,)

    Returns
    -------
    float
    """
    arrays = []
    for name, s in (("scores_pos", scores_pos), ("scores_neg", scores_neg)):
        if isinstance(s, torch.Tensor):
            s = s.detach().to("cpu", torch.float64).numpy()
        a = np.asarray(s, dtype=np.float64)
        if a.ndim != 1 or a.size == 0:
            raise GeodiffError(f"{name} must be a non-empty 1-d array, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise GeodiffError(f"{name} contain NaN or infinite values")
        arrays.append(a)
    pos, neg = arrays
    m, n = len(pos), len(neg)
    ranks = rankdata(np.concatenate([pos, neg]))  # average ranks of ties
    u = ranks[:m].sum() - m * (m + 1) / 2
    return float(u / (m * n))


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips, and quarter turns when square, per field; x is (B, 1, H, W)."""
    flip = torch.rand(len(x), generator=generator) < 0.5
    x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
    turns = torch.randint(0, 4, (len(x),), generator=generator)
    if x.shape[-1] != x.shape[-2]:
        turns = 2 * (turns // 2)  # half turns only
    out = x.clone()
    for k in (1, 2, 3):
        mask = (turns == k).to(x.device)
        if mask.any():
            out[mask] = torch.rot90(x[mask], k, dims=(-2, -1))
    return out


def _scores(model: nn.Module, x: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    """Logits of ``x`` (N, 1, H, W) in batches, as a float64 CPU tensor (N,)."""
    with torch.no_grad():
        parts = [
            model(x[lo : lo + batch_size].to(device)).cpu() for lo in range(0, len(x), batch_size)
        ]
    return torch.cat(parts).double()


def classifier_two_sample_test(
    generated,
    reference,
    *,
    seed: int = 0,
    test_fraction: float = 0.3,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    widths: tuple[int, ...] = (16, 32, 32),
    augment: bool = False,
    device=None,
    progress: bool = False,
) -> ClassifierTestResult:
    """Train :class:`SmallResNet` to separate two sets of fields; report held-out AUC.

    The larger set is subsampled to the size of the smaller (seeded); each is split
    into ``test_fraction`` held out and the rest for training. Fields are standardised
    with the mean and sd of the whole reference set (one transform for both sets);
    training uses Adam on the binary cross-entropy, generated fields labelled 1.

    Cost grows linearly with the number of fields, the number of pixels and ``epochs``
    (``benchmarks/bench_prior.py`` runs it on 1000 + 1000 fields). Two torch threads on
    cores another process is also using slow it down many times over: prefer
    ``torch.set_num_threads(1)`` on a shared machine.

    Parameters
    ----------
    generated, reference : torch.Tensor or np.ndarray, shape (n, H, W) or (n, 1, H, W)
        The two sets, on the same grid; at least ``2 / test_fraction`` fields each.
    seed : int, keyword-only
        Seeds the subsampling, the split, the initialisation, the shuffling and the
        augmentation: the same seed gives the same result on the same CPU and thread
        count (GPU kernels may not be deterministic).
    test_fraction : float, keyword-only
        Share of each set held out, in (0, 1).
    epochs, batch_size : int, keyword-only
    lr : float, keyword-only
        Adam learning rate.
    widths : tuple of int, keyword-only
        Channels of the network's stages.
    augment : bool, keyword-only
        Random flips and quarter turns of training fields. Off by default: they would
        hide errors of orientation in anisotropic priors.
    device : str or torch.device, optional
        Where to train; the GPU when torch sees one.
    progress : bool, keyword-only
        Show a progress bar over epochs.

    Returns
    -------
    ClassifierTestResult
    """
    gen, ref, seed, n, n_test, mean, sd = _checked_sets(
        generated, reference, seed, test_fraction, epochs, batch_size
    )
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    train_x, train_y, test_x = _split_sets(gen, ref, n, n_test, mean, sd, seed)
    model = _train_classifier(
        train_x, train_y, seed, epochs, batch_size, lr, widths, augment, device, progress
    )
    return _held_out_result(
        model, train_x, train_y, test_x, n_test, batch_size, device, epochs, seed
    )


def _checked_sets(generated, reference, seed, test_fraction, epochs, batch_size) -> tuple:
    """Validate the arguments of :func:`classifier_two_sample_test`.

    Returns
    -------
    tuple
        ``(gen, ref, seed, n, n_test, mean, sd)``: the two sets as arrays, the checked
        seed, fields per set, held-out fields per set, and the reference mean and sd.
    """
    gen = as_fields(generated, "generated", min_fields=2 * _MIN_TEST)
    ref = as_fields(reference, "reference", min_fields=2 * _MIN_TEST)
    check_same_grid(gen, ref)
    seed = as_seed(seed)
    if not 0.0 < float(test_fraction) < 1.0:
        raise GeodiffError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise GeodiffError(f"{name} must be a positive integer, got {value!r}")
    n = min(len(gen), len(ref))
    n_test = round(test_fraction * n)
    if n_test < _MIN_TEST or n - n_test < _MIN_TEST:
        raise GeodiffError(
            f"{n} fields per set leave {n_test} held out and {n - n_test} for training; "
            f"each needs at least {_MIN_TEST}"
        )
    sd = float(ref.std())
    if sd == 0.0:
        raise GeodiffError("reference fields are all equal: nothing to standardise by")
    mean = float(ref.mean())
    return gen, ref, seed, n, n_test, mean, sd


def _split_sets(gen, ref, n: int, n_test: int, mean: float, sd: float, seed: int) -> tuple:
    """Subsample both sets to ``n`` fields, standardise them and split off the held-out part.

    Returns
    -------
    tuple of torch.Tensor
        ``(train_x, train_y, test_x)``: training fields (N, 1, H, W) with their labels
        (generated 1, reference 0) and held-out fields, generated ones first.
    """
    split = torch.Generator().manual_seed(derive_seed(seed, _SPLIT_STREAM))
    pick_gen = torch.randperm(len(gen), generator=split)[:n].numpy()
    pick_ref = torch.randperm(len(ref), generator=split)[:n].numpy()

    def prepare(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((a - mean) / sd).float()[:, None]

    x_gen, x_ref = prepare(gen[pick_gen]), prepare(ref[pick_ref])
    train_x = torch.cat([x_gen[n_test:], x_ref[n_test:]])
    train_y = torch.cat([torch.ones(n - n_test), torch.zeros(n - n_test)])
    test_x = torch.cat([x_gen[:n_test], x_ref[:n_test]])
    return train_x, train_y, test_x


def _train_classifier(
    train_x, train_y, seed, epochs, batch_size, lr, widths, augment, device, progress
) -> nn.Module:
    """Train a seeded :class:`SmallResNet` with Adam on the binary cross-entropy.

    Returns
    -------
    SmallResNet
        On ``device``, in eval mode.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, _INIT_STREAM))
        model = SmallResNet(1, tuple(widths))
    model = model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    shuffle = torch.Generator().manual_seed(derive_seed(seed, _SHUFFLE_STREAM))
    model.train()
    for _ in tqdm(range(epochs), desc="classifier", disable=not progress, leave=False):
        order = torch.randperm(len(train_x), generator=shuffle)
        for lo in range(0, len(order), batch_size):
            idx = order[lo : lo + batch_size]
            if len(idx) < 2:  # BatchNorm needs two fields
                continue
            xb = train_x[idx]
            if augment:
                xb = _augment(xb, shuffle)
            optimiser.zero_grad()
            loss = loss_fn(model(xb.to(device)), train_y[idx].to(device))
            loss.backward()
            optimiser.step()

    model.eval()
    return model


def _held_out_result(
    model, train_x, train_y, test_x, n_test, batch_size, device, epochs, seed
) -> ClassifierTestResult:
    """Accuracies and the held-out AUC with its null standard error and p-value.

    Returns
    -------
    ClassifierTestResult
    """
    train_scores = _scores(model, train_x, batch_size, device)
    test_scores = _scores(model, test_x, batch_size, device)
    train_accuracy = float(((train_scores > 0).float() == train_y.double()).double().mean())
    test_y = torch.cat([torch.ones(n_test), torch.zeros(n_test)])
    test_accuracy = float(((test_scores > 0).float() == test_y).double().mean())
    auc = roc_auc(test_scores[:n_test], test_scores[n_test:])
    auc_se = math.sqrt((2 * n_test + 1) / (12 * n_test * n_test))
    z = (auc - 0.5) / auc_se
    return ClassifierTestResult(
        auc=auc,
        auc_se=auc_se,
        z=z,
        p_value=0.5 * math.erfc(z / math.sqrt(2.0)),
        train_accuracy=train_accuracy,
        test_accuracy=test_accuracy,
        n_train=len(train_x) // 2,
        n_test=n_test,
        epochs=epochs,
        seed=seed,
    )
