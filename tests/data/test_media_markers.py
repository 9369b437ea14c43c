"""Media in data rows: the marker count rule in every format, OpenAI content parts, media references.

The anchor refuses an example whose `<image>` markers do not number its images
(`mm_plugin._validate_messages`); tunelab reports it by row, as `file:row: images: reason`, when the data
is read, so `tunelab data check` finds it and training stops before it starts.
"""

from __future__ import annotations

import base64

import pytest
from _datafiles import register, write_rows
from PIL import Image

from tunelab.cli.main import main
from tunelab.config.data_args import DataArguments
from tunelab.data.loader import load_datasets, load_splits
from tunelab.data.validate import InvalidDataError

FIX = "write one {m} where each file goes, in the files' order"
ALPACA = {"columns": {"prompt": "instruction", "response": "output", "images": "images", "videos": "videos",
                      "audios": "audios"}}  # fmt: skip
SHAREGPT = {"formatting": "sharegpt", "columns": {"messages": "conversations", "images": "images",
                                                  "videos": "videos", "audios": "audios"}}  # fmt: skip
OPENAI = {"formatting": "openai", "columns": {"messages": "messages", "images": "images", "videos": "videos",
                                              "audios": "audios"}}  # fmt: skip


@pytest.fixture
def pictures(data_dir):
    for name, colour in (("cat.png", (255, 0, 0)), ("dog.png", (0, 255, 0))):
        Image.new("RGB", (8, 8), colour).save(data_dir / name)
    return data_dir


def _load(data_dir, rows, entry, stage="sft"):
    path = write_rows(data_dir / "mm", rows, "jsonl")
    register(data_dir, {"mm": {"file_name": path.name, **entry}})
    [loaded] = load_datasets(["mm"], DataArguments(dataset="mm", dataset_dir=str(data_dir)), stage)
    return loaded, path


def _alpaca(text, **media):
    return {"instruction": text, "output": "A cat.", **media}


def _sharegpt(text, **media):
    return {"conversations": [{"from": "human", "value": text}, {"from": "gpt", "value": "A cat."}], **media}


def _openai(text, **media):
    return {"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "A cat."}], **media}


FORMATS = {"alpaca": (ALPACA, _alpaca), "sharegpt": (SHAREGPT, _sharegpt), "openai": (OPENAI, _openai)}


@pytest.mark.parametrize("fmt", FORMATS)
def test_more_markers_than_files_is_a_row_problem(pictures, fmt):
    entry, make = FORMATS[fmt]
    loaded, path = _load(pictures, [make("<image><image>What are these?", images=["cat.png"])], entry)
    assert [str(p) for p in loaded.problems] == [
        f"{path}:1: images: 2 <image> markers in the text but 1 file(s): " + FIX.format(m="<image>")]
    assert loaded.examples == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_files_without_a_marker_are_a_row_problem_as_in_the_anchor(pictures, fmt):
    entry, make = FORMATS[fmt]
    loaded, path = _load(pictures, [make("What is it?", images=["cat.png", "dog.png"])], entry)
    assert [str(p) for p in loaded.problems] == [
        f"{path}:1: images: 0 <image> markers in the text but 2 file(s): " + FIX.format(m="<image>")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_matching_markers_give_an_example_with_resolved_paths(pictures, fmt):
    entry, make = FORMATS[fmt]
    loaded, _ = _load(pictures, [make("<image>and<image>?", images=["cat.png", "dog.png"]), make("Hi", images=[])],
                      entry)  # fmt: skip
    assert loaded.problems == []
    assert [e.images for e in loaded.examples] == [(str(pictures / "cat.png"), str(pictures / "dog.png")), ()]


@pytest.mark.parametrize("fmt", FORMATS)
def test_videos_and_audios_follow_the_same_rule(pictures, fmt):
    entry, make = FORMATS[fmt]
    (pictures / "clip").mkdir()
    Image.new("RGB", (8, 8)).save(pictures / "clip" / "1.png")
    (pictures / "a.wav").write_bytes(b"RIFF")
    rows = [make("<video>Describe.", videos=["clip"], audios=["a.wav"]),
            make("<video><audio>Describe.", videos=["clip"], audios=["a.wav"])]
    loaded, path = _load(pictures, rows, entry)
    assert [str(p) for p in loaded.problems] == [
        f"{path}:1: audios: 0 <audio> markers in the text but 1 file(s): " + FIX.format(m="<audio>")]
    assert loaded.examples[0].videos == (str(pictures / "clip"),)  # a folder of frames is a video


def test_markers_in_every_turn_count_and_the_system_prompt_does_not(pictures):
    row = {"instruction": "<image>And this?", "output": "A dog.", "system": "You see <image>s.",
           "history": [["<image>What is it?", "A cat."]], "images": ["cat.png", "dog.png"]}
    entry = {"columns": {**ALPACA["columns"], "history": "history", "system": "system"}}
    loaded, _ = _load(pictures, [row], entry)
    assert loaded.problems == [] and len(loaded.examples[0].images) == 2


def test_a_text_data_set_may_say_image_as_words(data_dir):
    """Without an images column the rule does not apply: a text model trains on the words (the anchor too)."""
    loaded, _ = _load(data_dir, [_alpaca("What does <image> mean in HTML?")],
                      {"columns": {"prompt": "instruction", "response": "output"}})  # fmt: skip
    assert loaded.problems == [] and loaded.examples[0].images == ()


def test_preference_rows_count_prompt_with_chosen_and_with_rejected(pictures):
    entry = {"formatting": "sharegpt", "ranking": True,
             "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected", "images": "images"}}
    rows = [
        {"conversations": [{"from": "human", "value": "<image>What is it?"}], "images": ["cat.png"],
         "chosen": {"from": "gpt", "value": "A cat."}, "rejected": {"from": "gpt", "value": "Also <image>."}},
        {"conversations": [{"from": "human", "value": "<image>What is it?"}], "images": ["cat.png"],
         "chosen": {"from": "gpt", "value": "A cat."}, "rejected": {"from": "gpt", "value": "A dog."}},
        {"conversations": [{"from": "human", "value": "What is it?"}], "images": ["cat.png"],
         "chosen": {"from": "gpt", "value": "A cat."}, "rejected": {"from": "gpt", "value": "A dog."}},
    ]  # fmt: skip
    loaded, path = _load(pictures, rows, entry, stage="dpo")
    assert [str(p) for p in loaded.problems] == [
        f"{path}:1: images: 2 <image> markers in the text with rejected but 1 file(s): " + FIX.format(m="<image>"),
        f"{path}:3: images: 0 <image> markers in the text but 1 file(s): " + FIX.format(m="<image>"),
    ]
    assert len(loaded.examples) == 1


def test_alpaca_preference_candidates_are_counted_too(pictures):
    entry = {"ranking": True, "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected",
                                          "images": "images"}}  # fmt: skip
    row = {"instruction": "<image>What?", "chosen": "<image>", "rejected": "A dog.", "images": ["cat.png"]}
    loaded, path = _load(pictures, [row], entry, stage="dpo")
    assert [str(p) for p in loaded.problems] == [
        f"{path}:1: images: 2 <image> markers in the text with chosen but 1 file(s): " + FIX.format(m="<image>")]


def test_data_check_prints_the_line_and_exits_1_training_stops_with_it(pictures, capsys):
    path = write_rows(pictures / "mm", [_sharegpt("<image><image>?", images=["cat.png"])], "jsonl")
    register(pictures, {"mm": {"file_name": path.name, **SHAREGPT}})
    line = f"{path}:1: images: 2 <image> markers in the text but 1 file(s): " + FIX.format(m="<image>")
    assert main(["data", "check", "mm", "--dataset_dir", str(pictures)]) == 1  # 1: problems found (docs/data.md)
    assert line in capsys.readouterr().out
    with pytest.raises(InvalidDataError) as info:  # a UserError: `tunelab train` exits 2 with it
        load_splits(DataArguments(dataset="mm", dataset_dir=str(pictures)), "sft")
    assert line in str(info.value)


# ---- media references -----------------------------------------------------------------------------------


def test_remote_and_missing_media_and_bad_objects_are_row_problems(pictures):
    rows = [_sharegpt("<image>", images=["https://example.com/cat.png"]),
            _sharegpt("<image>", images=["nope.png"]),
            _sharegpt("<image>", images=[{"url": "cat.png"}])]
    loaded, path = _load(pictures, rows, SHAREGPT)
    assert [str(p) for p in loaded.problems] == [
        f"{path}:1: images[0]: https://example.com/cat.png: remote media are not fetched (tunelab never downloads "
        "media); download the file and give its path (relative to media_dir, or absolute)",
        f"{path}:2: images[0]: file not found: nope.png (looked in {pictures})",
        f"{path}:3: images[0]: expected {{\"path\": <file>}} or {{\"bytes\": <the file's bytes>}}, got an object "
        "with keys 'url'",
    ]


def test_bytes_columns_become_data_urls_and_frame_lists_stay_one_video(pictures):
    png = (pictures / "cat.png").read_bytes()
    rows = [{"instruction": "<image><video>", "output": "ok", "images": [{"bytes": png, "path": None}],
             "videos": [["cat.png", "dog.png"]]}]
    path = write_rows(pictures / "mm", rows, "parquet")
    register(pictures, {"mm": {"file_name": path.name, **ALPACA}})
    [loaded] = load_datasets(["mm"], DataArguments(dataset="mm", dataset_dir=str(pictures)), "sft")
    assert loaded.problems == []
    [example] = loaded.examples
    assert example.images == ("data:image/png;base64," + base64.b64encode(png).decode(),)
    assert example.videos == ((str(pictures / "cat.png"), str(pictures / "dog.png")),)


# ---- OpenAI content parts -------------------------------------------------------------------------------


def _wav_url() -> str:
    return "data:audio/wav;base64," + base64.b64encode(b"RIFF....WAVE").decode()


def test_content_parts_become_markers_at_their_places_and_media_in_order(pictures):
    data = "data:image/png;base64," + base64.b64encode((pictures / "dog.png").read_bytes()).decode()
    audio = base64.b64encode(b"RIFF....WAVE").decode()
    (pictures / "clip").mkdir()
    user = [{"type": "text", "text": "Look at "}, {"type": "image_url", "image_url": {"url": "cat.png"}},
            {"type": "text", "text": " and "}, {"type": "image_url", "image_url": data},
            {"type": "image", "image": "dog.png"}, {"type": "video", "video": "clip"},
            {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}}, {"type": "text", "text": "?"}]
    row = {"messages": [{"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                        {"role": "user", "content": user},
                        {"role": "assistant", "content": [{"type": "text", "text": "Two "}, {"text": "animals."}]}]}
    loaded, _ = _load(pictures, [row], {"formatting": "openai", "columns": {"messages": "messages"}})
    assert loaded.problems == []
    [example] = loaded.examples
    assert example.system == "Be brief."
    assert [m.content for m in example.messages] == ["Look at <image> and <image><image><video><audio>?", "Two animals."]
    assert example.images == (str(pictures / "cat.png"), data, str(pictures / "dog.png"))
    assert example.videos == (str(pictures / "clip"),)
    assert example.audios == (f"data:audio/wav;base64,{audio}",)


def test_more_part_kinds_and_tool_results(pictures):
    (pictures / "a.wav").write_bytes(b"RIFF")
    row = {"messages": [
        {"role": "user", "content": [{"type": "audio_url", "audio_url": {"url": "a.wav"}}, {"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": [{"type": "video_url", "video_url": {"url": "cat.png"}},
                                     {"type": "audio", "audio": _wav_url()},
                                     {"type": "video", "video": ["cat.png", "dog.png"]}]},
        {"role": "assistant", "content": "Seen."}]}  # fmt: skip
    loaded, _ = _load(pictures, [row], {"formatting": "openai", "columns": {"messages": "messages"}})
    assert loaded.problems == []
    [example] = loaded.examples
    assert [m.content for m in example.messages] == ["<audio>Hi", "Hello.", "<video><audio><video>", "Seen."]
    assert example.videos == (str(pictures / "cat.png"), (str(pictures / "cat.png"), str(pictures / "dog.png")))
    assert example.audios == (str(pictures / "a.wav"), _wav_url())


def test_bad_content_parts_are_row_problems_naming_the_part(pictures):
    def user(*parts):
        return {"messages": [{"role": "user", "content": list(parts)}, {"role": "assistant", "content": "ok"}]}

    rows = [
        user({"type": "text", "text": "Hi"}, {"type": "file", "file": {"file_id": "x"}}),
        user({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}),
        user({"type": "image_url"}),
        user("just a string"),
        {"messages": [{"role": "system", "content": [{"type": "image", "image": "cat.png"}]},
                      {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "ok"}]},
        {**user({"type": "image", "image": "cat.png"}), "images": ["dog.png"]},
        {**user({"type": "text", "text": "<image>"}, {"type": "image", "image": "cat.png"})},
    ]  # fmt: skip
    loaded, path = _load(pictures, rows, OPENAI)
    expected_types = "text, image_url, image, video_url, video, audio_url, audio, input_audio"
    assert [str(p) for p in loaded.problems] == [
        f"{path}:1: messages[0].content[1].type: unknown content part type 'file' (expected one of {expected_types})",
        f"{path}:2: messages[0].content[0].image_url.url: https://example.com/a.png: remote media are not fetched "
        "(tunelab never downloads media); download the file and give its path (relative to media_dir, or absolute)",
        f"{path}:3: messages[0].content[0].image_url: missing required field (the part's media)",
        f"{path}:4: messages[0].content[0]: expected a content part object ({{\"type\": \"text\", ...}}), got string",
        f"{path}:5: messages[0].content[0].type: an image part is not allowed here: media go in the messages (a user "
        "turn), not in the system prompt or chosen / rejected",
        f"{path}:6: images: the row gives images both in its 'images' column and as content parts; give them one "
        "way (the parts put each marker where its file goes)",
        f"{path}:7: images: 2 <image> markers in the text but 1 file(s): " + FIX.format(m="<image>"),
    ]


def test_openai_preference_candidates_take_text_parts(pictures):
    entry = {"formatting": "openai", "ranking": True,
             "columns": {"messages": "messages", "chosen": "chosen", "rejected": "rejected"}}
    row = {"messages": [{"role": "user", "content": [{"type": "image", "image": "cat.png"}, {"type": "text", "text": "?"}]}],
           "chosen": {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
           "rejected": {"role": "assistant", "content": "A dog."}}  # fmt: skip
    loaded, _ = _load(pictures, [row], entry, stage="dpo")
    assert loaded.problems == []
    [example] = loaded.examples
    assert example.messages[0].content == "<image>?" and example.chosen.content == "A cat."
    assert example.images == (str(pictures / "cat.png"),)
    assert example.rejected.content == "A dog."
