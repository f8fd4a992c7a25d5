"""sae_lens is optional: pseval.sae must import and work without it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_core_works_without_sae_lens() -> None:
    script = textwrap.dedent(
        """
        import sys
        import pseval.sae
        assert "sae_lens" not in sys.modules, "importing pseval.sae imported sae_lens"
        sys.modules["sae_lens"] = None  # make any import of it fail
        from pseval.errors import SAEError
        from pseval.sae import load_sae
        try:
            load_sae("saelens:gpt2-small-res-jb/blocks.0.hook_resid_pre")
        except SAEError as exc:
            assert "pip install 'pseval[saelens]'" in str(exc), str(exc)
        else:
            raise AssertionError("no SAEError")
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
