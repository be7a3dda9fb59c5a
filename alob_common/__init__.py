"""What every stage of the toolkit shares: image types and decoding, atomic writes, the 5-point
templates and crop sizes, pair lists and folds, dlib model files, and the check that refuses to
resume an output with other settings.

This package imports nothing else of the project; every other package may import it.
"""

from alob_common.errors import UserError

__all__ = ["UserError"]
