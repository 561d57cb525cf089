"""`python -m trainer run --config run.json --tasks tasks.jsonl --grader grader.json --out DIR`."""

import sys

from trainer.cli import main

sys.exit(main())
