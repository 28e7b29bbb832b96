"""The Titans blocks (§4) and the encoder that stacks them."""

from .config import BlockConfig, EncoderConfig, Variant
from .encoder import EncoderState, TitansEncoder
from .lmm import LMMBlock
from .mac import MACBlock
from .mag import MAGBlock
from .mal import MALBlock
from .parts import BlockState, SegmentState

__all__ = ["BlockConfig", "BlockState", "EncoderConfig", "EncoderState", "LMMBlock", "MACBlock",
           "MAGBlock", "MALBlock", "SegmentState", "TitansEncoder", "Variant"]
