"""scikit-learn's own estimator checks on numeric input (an array (n, L) is n univariate
series)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from titans_seq import TitansClassifier

# A small, fast configuration: the checks fit dozens of times on tiny data (30-300 rows).
CHECKED = TitansClassifier(dim=16, depth=1, heads=2, memory_depth=1, chunk_size=4,
                           max_epochs=12, batch_size=64, lr=3e-2, val_fraction=0.0,
                           dropout=0.0, accelerator="cpu")

EXPECTED_FAILURES: dict[str, str] = {}


@parametrize_with_checks([CHECKED], expected_failed_checks=lambda _: EXPECTED_FAILURES)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
