"""``python -m bench.adversarial``: runs the campaign and prints its summary."""

from __future__ import annotations

import sys

from bench.adversarial.campaign import main

sys.exit(main())
