"""``python -m tardiff.cli``: the ``tardiff`` command."""

import sys

from tardiff.cli import main

sys.exit(main())
