"""The board's words in English and Chinese, one table keyed by component name.

A component's label and every message the board writes come only from here, so switching the language
is one pass over this table; tests walk every component of a built board and every `text(...)` call in
the code against it, in both languages.
"""

from __future__ import annotations

LANGS = ("en", "zh")

TEXTS: dict[str, tuple[str, str]] = {
    # top bar
    "ui_lang": ("Language", "语言"),
    "model_name_or_path": ("Model path or hub id", "模型路径"),
    "template": ("Chat template", "对话模板"),
    "finetuning_type": ("Finetuning method", "微调方法"),
    "checkpoint_path": ("Adapter / checkpoint (a trained run)", "适配器 / 检查点"),
    "quantization_bit": ("Quantization bit (QLoRA)", "量化等级"),
    "trust_remote_code": ("Trust the model's own code (trust_remote_code)", "信任模型自带代码 (trust_remote_code)"),
    "refresh_checkpoints": ("Refresh", "刷新"),
    # tabs
    "tab_train": ("Train", "训练"),
    "tab_eval": ("Evaluate & Predict", "评估与预测"),
    "tab_chat": ("Chat", "对话"),
    "tab_export": ("Export", "导出"),
    # train tab
    "stage": ("Stage", "训练阶段"),
    "dataset_dir": ("Data dir", "数据路径"),
    "dataset": ("Dataset", "数据集"),
    "preview_data": ("Preview data", "预览数据集"),
    "learning_rate": ("Learning rate", "学习率"),
    "num_train_epochs": ("Epochs", "训练轮数"),
    "max_steps": ("Max steps (-1: by epochs)", "最大步数（-1：按轮数）"),
    "max_samples": ("Max samples per data set (empty: all)", "最大样本数（留空：全部）"),
    "compute_type": ("Compute type", "计算类型"),
    "cutoff_len": ("Cutoff length", "截断长度"),
    "per_device_train_batch_size": ("Batch size", "批处理大小"),
    "gradient_accumulation_steps": ("Gradient accumulation", "梯度累积"),
    "lr_scheduler_type": ("LR scheduler", "学习率调节器"),
    "max_grad_norm": ("Max gradient norm", "最大梯度范数"),
    "val_size": ("Val size", "验证集比例"),
    "warmup_steps": ("Warmup steps (< 1: ratio)", "预热步数（< 1：比例）"),
    "logging_steps": ("Logging steps", "日志间隔"),
    "save_steps": ("Save steps", "保存间隔"),
    "seed": ("Seed", "随机种子"),
    "output_dir": ("Output dir (empty: a new folder under saves/)", "输出目录（留空：saves/ 下新建）"),
    "group_lora": ("LoRA settings", "LoRA 参数设置"),
    "lora_rank": ("LoRA rank", "LoRA 秩"),
    "lora_alpha": ("LoRA alpha (empty: 2 × rank)", "LoRA 缩放系数（留空：2 × 秩）"),
    "lora_dropout": ("LoRA dropout", "LoRA 随机丢弃"),
    "lora_target": ("LoRA modules (all: every linear layer)", "LoRA 作用模块"),
    "additional_target": ("Additional modules (trained fully)", "附加模块"),
    "loraplus_lr_ratio": ("LoRA+ LR ratio (empty: off)", "LoRA+ 学习率比例（留空：不使用）"),
    "use_rslora": ("rsLoRA", "使用 rsLoRA"),
    "use_dora": ("DoRA", "使用 DoRA"),
    "pissa_init": ("PiSSA init", "PiSSA 初始化"),
    "create_new_adapter": ("New adapter on top of the picked one", "新建适配器"),
    "group_freeze": ("Freeze settings", "部分参数微调设置"),
    "freeze_trainable_layers": ("Trainable layers (n last, -n first)", "可训练层数"),
    "freeze_trainable_modules": ("Trainable modules", "可训练模块"),
    "freeze_extra_modules": ("Extra modules", "额外模块"),
    "group_pref": ("Preference settings (RM / DPO / KTO)", "偏好训练设置（RM / DPO / KTO）"),
    "pref_beta": ("Beta", "Beta 参数"),
    "pref_ftx": ("SFT loss weight (ftx)", "SFT 损失权重"),
    "pref_loss": ("Loss", "损失类型"),
    "kto_chosen_weight": ("KTO chosen weight", "KTO 正样本权重"),
    "kto_rejected_weight": ("KTO rejected weight", "KTO 负样本权重"),
    "group_extra": ("Extra keys (YAML)", "其他参数（YAML）"),
    "extra_yaml": ("Any other config key, one `key: value` per line", "其他配置项，每行一个 `key: value`"),
    "config_path": ("Config file", "配置文件"),
    "preview": ("Preview command", "预览命令"),
    "save_config": ("Save config", "保存配置"),
    "load_config": ("Load config", "载入配置"),
    "start": ("Start", "开始"),
    "abort": ("Abort", "中断"),
    "run": ("Run (reattach)", "运行记录"),
    "resume_checkpoint": ("Checkpoint of this run", "该运行的检查点"),
    "resume": ("Resume from this checkpoint", "从此检查点继续训练"),
    "refresh_runs": ("Refresh runs", "刷新"),
    "yaml_box": ("Config YAML", "配置 YAML"),
    "command_box": ("Command", "命令"),
    "loss_plot": ("Loss", "损失"),
    "log_box": ("Last log lines", "最新日志"),
    # evaluate tab
    "eval_dataset_dir": ("Data dir", "数据路径"),
    "eval_dataset": ("Data set (generation + BLEU / ROUGE)", "数据集（生成 + BLEU / ROUGE）"),
    "task": ("or benchmark task (e.g. tunelab_sample_test)", "或评测任务（如 tunelab_sample_test）"),
    "n_shot": ("Few-shot examples", "少样本数量"),
    "lang": ("Benchmark language", "评测语言"),
    "eval_cutoff_len": ("Cutoff length", "截断长度"),
    "eval_max_samples": ("Max samples (empty: all)", "最大样本数（留空：全部）"),
    "batch_size": ("Batch size", "批处理大小"),
    "eval_max_new_tokens": ("Max new tokens", "最大生成长度"),
    "eval_top_p": ("Top-p", "Top-p 采样值"),
    "eval_temperature": ("Temperature", "温度系数"),
    "save_dir": ("Results dir (empty: a new folder)", "结果目录（留空：新建）"),
    "results_box": ("Results", "结果"),
    "job_log": ("Log", "日志"),
    # chat tab
    "image": ("Image (for models that read pictures)", "图片（用于能读图的模型）"),
    "infer_backend": ("Inference engine", "推理引擎"),
    "infer_dtype": ("Inference dtype", "推理数据类型"),
    "default_system": ("System prompt", "系统提示词"),
    "max_new_tokens": ("Max new tokens", "最大生成长度"),
    "top_p": ("Top-p", "Top-p 采样值"),
    "temperature": ("Temperature (0: greedy)", "温度系数（0：贪心）"),
    "load_model": ("Load model", "加载模型"),
    "unload_model": ("Unload model", "卸载模型"),
    "query": ("Message", "输入"),
    "send": ("Send", "提交"),
    "clear": ("Clear history", "清空历史"),
    "chatbot": ("Chat", "对话"),
    # export tab
    "export_dir": ("Export dir", "导出目录"),
    "export_size": ("Max shard size (GB)", "最大分块大小（GB）"),
    "export_dtype": ("Export dtype", "导出数据类型"),
    "export_device": ("Export device", "导出设备"),
    "export_legacy_format": ("Legacy format (.bin)", "旧格式（.bin）"),
    "export_quantization_bit": ("GPTQ bits", "GPTQ 量化等级"),
    "export_hub_model_id": ("Hub repository (push)", "Hub 仓库"),
    "export": ("Export", "开始导出"),
    # messages
    "no_run": ("No run yet: set the fields and press Start.", "尚无运行：设置参数后点击开始。"),
    "step": ("step", "步"),
    "status_running": ("running", "运行中"),
    "status_finished": ("finished", "已完成"),
    "status_failed": ("failed", "失败"),
    "status_aborted": ("aborted", "已中断"),
    "status_lost": ("ended without a record", "已结束（无退出记录）"),
    "started": ("Started", "已启动"),
    "aborted": ("Aborted; no process of the run is left.", "已中断，进程已全部结束。"),
    "nothing_to_abort": ("No running job to abort.", "没有正在运行的任务。"),
    "saved": ("Saved", "已保存"),
    "loaded": ("Loaded", "已载入"),
    "model_loaded": ("Model loaded", "模型已加载"),
    "model_unloaded": ("Model unloaded", "模型已卸载"),
    "no_model": ("Load a model first.", "请先加载模型。"),
    "resumed": ("Resumed", "已继续训练"),
    "still_alive": ("still alive", "仍在运行的进程"),
    "kind_train": ("train", "训练"),
    "kind_eval": ("eval", "评估"),
    "kind_export": ("export", "导出"),
    "exit_code": ("exit code", "退出码"),
    "error_line": ("error", "错误"),
    "tokens_per_second": ("tokens/s", "词元/秒"),
    "loss_word": ("loss", "损失"),
    "rows_word": ("rows", "行"),
    "hub_dataset": ("hub data set", "Hub 数据集"),
    "not_a_number": ("is not a number: write one (e.g. 5e-05 or 8), or leave the box empty for the default.",
                     "不是数字：请填写数字（如 5e-05 或 8），或留空使用默认值。"),
    "not_a_whole_number": ("is not a whole number: write one (e.g. 8), or leave the box empty for the default.",
                           "不是整数：请填写整数（如 8），或留空使用默认值。"),
    "busy_board_run": ("output_dir {folder}: a run started from this board is still running there (pid {pid}, "
                       "since {since}). Wait for it to end, abort it, or pick another output_dir.",
                       "output_dir {folder}：该目录中由本面板启动的运行仍在进行（pid {pid}，开始于 {since}）。"
                       "请等待其结束、中断它，或换一个 output_dir。"),
    "busy_locked_run": ("output_dir {folder}: `tunelab train` is running there (pid {pid} on {host}). Wait for it "
                        "to end, stop it, or pick another output_dir.",
                        "output_dir {folder}：`tunelab train` 正在该目录中运行（{host} 上的 pid {pid}）。"
                        "请等待其结束、停止它，或换一个 output_dir。"),
    "resume_needs_run": ("Pick an ended training run in the run list first.", "请先在运行记录中选择一个已结束的训练。"),
    "resume_needs_checkpoint": ("Pick one of this run's checkpoints to resume from.", "请选择该运行的一个检查点。"),
    "no_weights": ("{folder} holds no trained weights (no adapter_config.json or config.json): the run ended before "
                   "saving them. Pick one of its checkpoints instead{checkpoints}, or train it to the end.",
                   "{folder} 中没有训练好的权重（没有 adapter_config.json 或 config.json）：该运行在保存前就结束了。"
                   "请改选它的检查点{checkpoints}，或将其训练完成。"),
}


def text(name: str, lang: str) -> str:
    pair = TEXTS.get(name)
    if pair is None:
        return name
    return pair[1] if lang == "zh" else pair[0]


def texts(lang: str) -> dict[str, str]:
    """Every string in one language (the live view formats its messages from this)."""
    return {name: text(name, lang) for name in TEXTS}
