"""Request and response bodies of the HTTP API, with the size limits of a `ServeConfig`.

Limits come from the config, so the models are built per app by `request_models(config)`.
Unknown fields are rejected (422), so a misspelt option never passes silently.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from textcls.config import ServeConfig
from textcls.data.texts import is_blank, text_problem


class Prediction(BaseModel):
    label: str = Field(description="The most probable label.")
    score: float = Field(description="Its probability.")
    probs: dict[str, float] = Field(description="Probability of every label.")


class PredictResponse(BaseModel):
    predictions: list[Prediction] = Field(description="One per input text, in input order.")


class MultiLabelPrediction(BaseModel):
    labels: list[str] = Field(description="Every label whose score reaches its threshold (maybe none), in label order.")
    scores: dict[str, float] = Field(description="Each label's own sigmoid score (they need not sum to 1).")


class MultiLabelPredictResponse(BaseModel):
    """What a multi-label run answers."""

    predictions: list[MultiLabelPrediction] = Field(description="One per input text, in input order.")


class ExplainResponse(Prediction):
    family: str
    tokens: list[str] = Field(description="The model's tokens (n-grams for tfidf).")
    token_weights: list[float] = Field(description="Attention from [CLS] (or the family's weights) per token.")
    words: list[tuple[str, float]] = Field(description="Word pieces merged into words, weights summing to 1.")
    layer: int | None
    head: int | None


class ErrorDetail(BaseModel):
    status: int
    type: str
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    """The one shape of every error answer."""

    error: ErrorDetail


def _not_blank(text: str) -> str:
    if is_blank(text):
        raise ValueError("expected a text with at least one visible character (not only spaces, zero-width or NUL)")
    problem = text_problem(text)
    if problem is not None:
        raise ValueError(problem)
    return text


# The request bodies' fields; `request_models` makes the models that serve them, capped at a config's limits.
class PredictFields(BaseModel):
    texts: list[str]


class ExplainFields(BaseModel):
    text: str
    layer: int = -1
    head: int | None = None


def request_models(config: ServeConfig) -> tuple[type[PredictFields], type[ExplainFields]]:
    """The `PredictRequest` and `ExplainRequest` models capped at `config`'s limits."""
    # a blank text has nothing to classify: refused as `textcls predict` refuses a blank input line
    Text = Annotated[str, Field(min_length=1, max_length=config.max_text_chars), AfterValidator(_not_blank)]

    class PredictRequest(PredictFields):
        model_config = ConfigDict(extra="forbid")
        texts: list[Text] = Field(
            min_length=1,
            max_length=config.max_texts,
            description=f"1 to {config.max_texts} texts of at most {config.max_text_chars} characters.",
            examples=[["Stocks fell sharply after the quarterly report."]],
        )

    class ExplainRequest(ExplainFields):
        model_config = ConfigDict(extra="forbid")
        text: Text = Field(examples=["Researchers unveiled a faster chip."])
        layer: int = Field(-1, ge=-1024, le=1024, description="Layer whose attention is shown; -1 is the last.")
        head: int | None = Field(None, ge=-1024, le=1024, description="Attention head; null for the mean over heads.")

    return PredictRequest, ExplainRequest
