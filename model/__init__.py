"""Find and tag themes in news text: train from a corpus and a theme file, then tag new articles."""

from .errors import UserInputError
from .pipeline import TrainSummary, train
from .tagfile import to_dataframe
from .tagger import ParagraphTags, TagResult, ThemeTagger
from .themes import Theme, load_themes, parse_themes

__all__ = ["ThemeTagger", "TagResult", "ParagraphTags", "Theme", "load_themes", "parse_themes", "train",
           "TrainSummary", "UserInputError", "to_dataframe"]
