"""Where the deploy tests find the chart, its example institutions and tools."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "lms-sync"
INSTITUTIONS = {
    "state-u": CHART / "ci" / "state-u-values.yaml",
    "county-district": CHART / "ci" / "county-district-values.yaml",
}
K8S_VERSION = "1.31.0"  # bundled by kubernetes-validate 1.37.0; the chart's kubeVersion is >=1.27
