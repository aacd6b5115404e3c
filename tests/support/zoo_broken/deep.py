"""An app module that imports settings which fail at import."""

from tests.support.zoo_broken import settings

app = settings
