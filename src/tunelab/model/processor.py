"""The processor of a multimodal model: loaded with the tokenizer, and what encoding media needs from it.

A text-only model has none (None), and data with media is then refused by name before training
(`train/data_prep.py`). The processor shares the run's tokenizer object, so tokens added by
`add_tokens` / `new_special_tokens` and the pad token chosen by `load_tokenizer` are the same in the
processor's expansion as in the encoding.
"""

from __future__ import annotations

import logging
from typing import Any

from tunelab.config.model_args import ModelArguments
from tunelab.data.encode_media import MediaEncoding
from tunelab.data.media import MediaOptions
from tunelab.errors import UserError
from tunelab.model.multimodal import FAMILIES, MultimodalFamily, multimodal_family

logger = logging.getLogger("tunelab.model")


def model_family(args: ModelArguments, model_path: str) -> MultimodalFamily | None:
    """The multimodal family of the model at `model_path` (config.json's model_type), None when text-only."""
    from transformers import AutoConfig

    from tunelab.model.load import hub_kwargs

    try:
        config = AutoConfig.from_pretrained(model_path, **hub_kwargs(args))
    except Exception:  # noqa: BLE001 - the model loader reports an unreadable config with its own message
        return None
    return multimodal_family(getattr(config, "model_type", None))


def _without_video_processor(processor_class: type) -> type:
    """`processor_class` with no video processor among its parts.

    transformers' video processors need torchvision, and a processor refuses to be built without all of
    its parts, so on a machine without a torchvision matching torch (a CPU build of torch has none on
    PyPI) a Qwen-VL processor cannot even load for images. A subclass that leaves the video part out
    (it is not monkey-patching: transformers reads a processor's parts from `get_attributes`) processes
    images exactly as the full one does; a video then fails with the message of `data/media.py`."""

    class ImageProcessorOnly(processor_class):  # type: ignore[misc,valid-type]
        @classmethod
        def get_attributes(cls) -> list[str]:
            return [name for name in super().get_attributes() if name != "video_processor"]

    ImageProcessorOnly.__name__ = ImageProcessorOnly.__qualname__ = processor_class.__name__  # saved as the original
    return ImageProcessorOnly


def load_processor(model_path: str, family: MultimodalFamily, kwargs: dict[str, Any]) -> Any:
    """`AutoProcessor.from_pretrained`, or, when only the missing torchvision stops it, the family's processor
    without its video part (logged)."""
    import importlib.util

    import transformers
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(model_path, **kwargs)
    except (OSError, ValueError, ImportError, AttributeError):
        if importlib.util.find_spec("torchvision") is not None:
            raise
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    names = [PROCESSOR_MAPPING_NAMES.get(model_type) for model_type in family.model_types]
    name = next((n for n in names if n), None)
    if name is None:
        raise UserError(f"{family.name}: transformers knows no processor for this model type")
    processor = _without_video_processor(getattr(transformers, name)).from_pretrained(model_path, **kwargs)
    logger.info("torchvision is not installed: the %s processor reads images and audio but not videos "
                "(install a torchvision build matching torch to train on videos)", name)
    return processor


def load_media_encoding(args: ModelArguments, model_path: str, tokenizer: Any) -> MediaEncoding | None:
    """The processor of a multimodal model with the run's tokenizer and media keys; None for a text model."""
    family = model_family(args, model_path)
    if family is None:
        return None
    from tunelab.model.load import hub_kwargs

    try:
        processor = load_processor(model_path, family, hub_kwargs(args))
    except Exception as error:  # noqa: BLE001 - a folder without processor files is the user's to fix
        raise UserError(f"model_name_or_path '{args.model_name_or_path}' is a {family.name} model, but its processor "
                        f"could not be loaded ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                        "the folder needs the processor files the model was published with "
                        "(preprocessor_config.json, processor_config.json).") from None
    processor.tokenizer = tokenizer
    if not getattr(tokenizer, "chat_template", None) and getattr(processor, "chat_template", None):
        tokenizer.chat_template = processor.chat_template  # what `template: auto` renders (VLMs ship it here)
        logger.info("the tokenizer has no chat template: using the processor's (template: auto renders it)")
    logger.info("multimodal model (%s): media are expanded by its %s", family.name, type(processor).__name__)
    return MediaEncoding(processor=processor, placeholders=dict(family.placeholders),
                         options=MediaOptions.from_model_args(args), processor_kwargs=processor_kwargs(args, family))


#: processor keys the anchor has that only some families read (the rest refuse them when set)
FAMILY_ONLY_KEYS = ("image_do_pan_and_scan", "crop_to_patches", "use_audio_in_video")


def processor_kwargs(args: ModelArguments, family: MultimodalFamily) -> dict[str, Any]:
    """The family's own processor settings from their keys; one set for a family that does not read it
    stops the run by name rather than being ignored."""
    own = dict(family.processor_keys)
    for key in FAMILY_ONLY_KEYS:
        if getattr(args, key, False) and key not in own:
            readers = [f.name for f in FAMILIES if key in dict(f.processor_keys)] or ["no family tunelab trains yet"]
            raise UserError(f"{key}: true is read by {', '.join(readers)}'s processor only; this model is "
                            f"{family.name}. Remove the key.")
    return {keyword: getattr(args, key) for key, keyword in own.items()}
