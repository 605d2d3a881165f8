"""`python -m liq_pipeline.cli …`: the same as the `liq` console script."""

import sys

from liq_pipeline.cli.main import main

sys.exit(main())
