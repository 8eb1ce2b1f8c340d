"""The committed stubs in src/auditum/v1 are exactly what grpcio-tools generates from proto/."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_committed_stubs_match_the_protos():
    tool = os.path.join(HERE, "..", "tools", "generate_stubs.py")
    result = subprocess.run([sys.executable, tool, "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
