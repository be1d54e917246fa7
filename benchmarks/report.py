"""The suite's results as a Markdown table and PNG plots."""

from __future__ import annotations

from pathlib import Path


def _f(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def markdown(res: dict, command: str) -> str:
    m = res["machine"]
    plan = res["plan"]
    lines = [
        f"Machine: {m['cpu']} ({m.get('int8_isa', 'int8 ISA not recorded')}), {m['cores']} cores, {m['threads']} threads; Python {m['python']}, "
        f"ai-edge-litert {m['ai-edge-litert']}, onnxruntime {m['onnxruntime']}, tensorflow {m['tensorflow']}; "
        f"{m['date']}. Command: `{command}` ({res['wall_minutes']} min). Medians of {plan['rounds']} fresh "
        f"process(es) x {plan['reps']} calls after 3 warm-up calls; batch 1 latency at exact lengths.",
        "",
    ]
    for key, model in res["models"].items():
        a = model["architecture"]
        seqs = sorted({int(s) for v in model["variants"].values() for s in v["latency"]})
        n = int(next(iter(model["variants"].values()))["sentences"])
        lines += [
            f"**{key}** (L{a['num_layers']} H{a['hidden_size']}), throughput on {n} real sentences, batch 32",
            "",
            "| variant | MB | "
            + " | ".join(f"p50/p90 ms @{s}" for s in seqs)
            + " | x TF @128 | sent/s dynamic | sent/s fixed 128 | dyn/fixed | x TF sent/s | cold start s "
            "| RSS MB (load+1, default runner) | RSS/file | GMAC/s @128 | cos vs ref | export s | export GB |",
            "|" + " --- |" * (15 + len(seqs)),
        ]
        for name, r in model["variants"].items():
            lat = " | ".join(
                f"{r['latency'][s]['p50_ms']:.1f}/{r['latency'][s]['p90_ms']:.1f}" if s in r["latency"] else "-"
                for s in seqs
            )
            lines.append(
                f"| {name} | {_f(r.get('file_mb'), '.1f')} | {lat} | {_f(r.get('speedup_vs_tf', {}).get(128), '.2f')} | "
                f"{r['dynamic_sentences_per_s']:.0f} | {r['fixed128_sentences_per_s']:.0f} | {r['dynamic_vs_fixed128']:.2f} | "
                f"{_f(r.get('throughput_vs_tf'), '.2f')} | {r['cold_start_s']:.2f} | {_f(r.get('rss_mb', r.get('rss_only_mb')), '.0f')} | "
                f"{_f(r.get('rss_over_file'), '.2f')} | {_f(r.get('gmacs_per_s_seq128'), '.1f')} | "
                f"{_f(r.get('cosine_pooled'), '.5f')} | {_f(r.get('export_s'), '.0f')} | {_f(r.get('export_peak_rss_gb'), '.2f')} |"
            )
        lines.append("")
        cached = {n: r for n, r in model["variants"].items() if r.get("rss_cache_mb")}
        if cached:
            lines += [
                'Peak RSS of a runtime process, LiteRT Interpreter (`weight_cache="off"`) vs `weight_cache="auto"` '
                "(the default since 2026-12-02: CompiledModel + XNNPACK's packed-weights cache file, second load):",
                "",
                "| variant | file MB | Interpreter: 1 sentence MB (x file) | after seq 128 MB (x file) "
                "| weight cache: 1 sentence MB (x file) | after seq 128 MB (x file) "
                "| p50 ms @128 Interpreter / weight cache |",
                "|" + " --- |" * 7,
            ]
            for name, r in cached.items():

                def pair(k, r=r):
                    return f"{_f(r.get(k + '_mb'), '.0f')} ({_f(r.get(k + '_over_file'), '.2f')})"

                lines.append(
                    f"| {name} | {r['file_mb']:.1f} | {pair('rss_only')} | {pair('rss_seq128')} | "
                    f"{pair('rss_cache')} | {pair('rss_cache_seq128')} | "
                    f"{_f(r.get('interpreter_p50_ms_seq128'), '.1f')} / {_f(r.get('cache_p50_ms_seq128'), '.1f')} |"
                )
            lines.append("")
    roof = res.get("roofline") or {}
    if roof:
        lines.append(
            "Roofline: best single int8 matrix product (dynamic int8, as the recipe quantizes) per backend: "
            + _rates(roof)
        )
    roof32 = res.get("roofline_fp32") or {}
    if roof32:
        lines.append("")
        lines.append("fp32 roofline, the same products in fp32: " + _rates(roof32))
    shares = roofline_shares(res)
    if shares:
        lines.append("")
        lines.append("Of the roofline at seq 128 (the model's multiply-accumulates per second over its backend's best")
        lines.append("single product of the same precision):")
        lines.append("")
        lines += [f"- {line}" for line in shares]
    lines.append("")
    lines.append(
        "x TF: TensorFlow running the fp32 SavedModel at the same length (latency) or padded to 128 as TF Hub "
        "preprocessing does (throughput). RSS: a process that loads the bundle and embeds one sentence."
    )
    return "\n".join(lines) + "\n"


def _rates(roof: dict) -> str:
    """``tflite 752.4 GMAC/s (128x768x3072); onnx ...``: one roofline's products per backend."""

    def form(r: dict) -> str:  # ONNX on an x86 CPU without VNNI: the exact u8 x u8 kernel
        return ", u8 x u8: weights re-signed as the runner does on this CPU" if r.get("resigned") else ""

    return (
        "; ".join(
            f"{b} {r['gmacs_per_s']:.1f} GMAC/s ({'x'.join(map(str, r['shape']))}{form(r)})" for b, r in roof.items()
        )
        + "."
    )


def roofline_shares(res: dict) -> list[str]:
    """One line per model: each fp32 and dynamic int8 variant's GMAC/s at seq 128 as a share of
    the same backend's single-product rate in the same precision."""
    rooflines = {"int8": res.get("roofline") or {}, "fp32": res.get("roofline_fp32") or {}}
    lines = []
    for key, model in res.get("models", {}).items():
        parts = []
        for name, r in model["variants"].items():
            backend = "tflite" if name.startswith("TFLite") else "onnx" if name.startswith("ONNX") else None
            precision = "int8" if name.endswith("dynamic int8") else "fp32" if name.endswith("fp32") else None
            peak = rooflines.get(precision or "", {}).get(backend or "")
            if peak and "gmacs_per_s_seq128" in r:
                share = r["gmacs_per_s_seq128"] / peak["gmacs_per_s"]
                parts.append(f"{name} {r['gmacs_per_s_seq128']:.0f} GMAC/s = {share:.0%}")
        if parts:
            lines.append(f"{key}: " + "; ".join(parts))
    return lines


def plots(res: dict, out: Path, prefix: str = "benchmarks") -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = res["models"]

    def per_model(name: str, draw) -> Path:
        """One panel per model, drawn by ``draw(ax, model)``, saved as ``{prefix}_{name}.png``."""
        fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False)
        for ax, (key, model) in zip(axes[0], models.items()):
            draw(ax, model)
            ax.set_title(key)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        path = out / f"{prefix}_{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path

    def latency(ax, model):
        for name, r in model["variants"].items():
            s = sorted(int(x) for x in r["latency"])
            ax.plot(s, [r["latency"][x]["p50_ms"] for x in s], "o-", label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length (batch 1)")
        ax.set_ylabel("latency p50, ms")

    def paired_bars(ax, model, names, *series, xlabel=None):
        """One bar per series and variant: each series is (key, label); missing values are left out."""
        y = range(len(names))
        height = 0.8 / len(series)
        for j, (key, label) in enumerate(series):
            offset = 0.4 - height * (j + 0.5)
            vals = [model["variants"][n].get(key) for n in names]
            ax.barh([i + offset for i, v in zip(y, vals) if v], [v for v in vals if v], height, label=label)
        ax.set_yticks(list(y), names, fontsize=7)
        if xlabel:
            ax.set_xlabel(xlabel)

    paths = [
        per_model("latency", latency),
        per_model(
            "throughput",
            lambda ax, m: paired_bars(
                ax,
                m,
                list(m["variants"]),
                ("dynamic_sentences_per_s", "dynamic padding"),
                ("fixed128_sentences_per_s", "padded to 128"),
                xlabel="sentences/s (real text, batch 32)",
            ),
        ),
        per_model(
            "size_memory",
            lambda ax, m: paired_bars(
                ax,
                m,
                [n for n, r in m["variants"].items() if "file_mb" in r],
                ("file_mb", "file MB"),
                ("rss_only_mb", "peak RSS MB (load + 1 call)"),
                ("rss_cache_mb", "peak RSS MB, weight cache (load + 1 call)"),
            ),
        ),
    ]

    roof = res.get("roofline") or {}
    if roof:
        rooflines = {"int8": roof, "fp32": res.get("roofline_fp32") or {}}
        fig, ax = plt.subplots(figsize=(7, 5))
        labels, vals, colors = [], [], []
        for precision, variant in (("int8", "dynamic int8"), ("fp32", "fp32")):
            for backend, peak in rooflines[precision].items():
                labels.append(f"{backend}: single {precision} matmul")
                vals.append(peak["gmacs_per_s"])
                colors.append("#999")
                for key, model in models.items():
                    r = model["variants"].get(f"{'TFLite' if backend == 'tflite' else 'ONNX'} {variant}")
                    if r and "gmacs_per_s_seq128" in r:
                        labels.append(f"{backend} {precision}: {key} @128")
                        vals.append(r["gmacs_per_s_seq128"])
                        colors.append("#36c" if precision == "int8" else "#c63")
        ax.barh(labels, vals, color=colors)
        ax.invert_yaxis()
        for i, v in enumerate(vals):
            ax.text(v, i, f" {v:.1f}", va="center", fontsize=8)
        ax.set_xlabel(f"GMAC/s (batch 1, {res.get('machine', {}).get('threads', 2)} threads)")
        ax.set_title("roofline: achieved vs best single matrix product, per precision")
        fig.tight_layout()
        paths.append(out / f"{prefix}_roofline.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths
