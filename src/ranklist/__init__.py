"""ranklist: the Ranked List Loss (Wang et al., CVPR 2019; TPAMI 2021) and the paper's whole protocol."""

from ranklist.losses.ranked_list import PRESETS, RankedListLoss, ranked_list_loss

__all__ = ["PRESETS", "RankedListLoss", "ranked_list_loss"]
__version__ = "0.1.0"
