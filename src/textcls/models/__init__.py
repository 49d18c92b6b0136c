"""Model families behind one `Classifier` interface."""

from textcls.models.base import Classifier, family_class

__all__ = ["Classifier", "family_class"]
