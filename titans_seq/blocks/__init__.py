"""The Titans blocks (§4) and the encoder that stacks them."""

from .encoder import EncoderState, TitansEncoder
from .lmm import LMMBlock
from .mac import MACBlock
from .mag import MAGBlock
from .mal import MALBlock
from .parts import BlockConfig, BlockState, SegmentState

__all__ = ["BlockConfig", "BlockState", "EncoderState", "LMMBlock", "MACBlock", "MAGBlock",
           "MALBlock", "SegmentState", "TitansEncoder"]
