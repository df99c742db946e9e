"""``housex embed`` throughput on this CPU: a MERT-v1-95M-shaped encoder (a HubertModel with MERT-95M's
sizes, random weights: 12 layers x 768, 7-layer conv front end) over 7.5 s clips at 24 kHz.

Rows: the embedding step as ``housex embed`` runs it (batches of 4 through ``layer_states`` +
``pooled_layers``) against the straightforward reference measured in the same run (one clip at a time,
``output_hidden_states=True``, numpy means).  The cost of a full MERT-95M embed of the real release is
(clips) / (clips/s); no GPU was available when these rows were written, so GPU clips/s are not measured.
"""

from __future__ import annotations

import os
import time

import numpy as np

from bench.timing import best_time

SECONDS, RATE, CLIPS, BATCH = 7.5, 24000, 8, 4


def main() -> None:
    import torch
    from transformers import HubertConfig, HubertModel

    from housex.modeling.modeling_encoder_classifier import layer_states, pooled_layers

    torch.manual_seed(0)
    config = HubertConfig(feat_proj_layer_norm=True, do_stable_layer_norm=False, feat_extract_norm="group")  # MERT-95M sizes
    model = HubertModel(config).eval()
    clips = np.random.default_rng(0).standard_normal((CLIPS, int(SECONDS * RATE))).astype(np.float32) * 0.1

    def ours():
        out = []
        with torch.inference_mode():
            for start in range(0, CLIPS, BATCH):
                x = torch.from_numpy(clips[start:start + BATCH])
                states, masks = layer_states(model, {"input_values": x, "attention_mask": torch.ones_like(x, dtype=torch.long)})
                out.append(pooled_layers(states, masks).numpy())
        return np.concatenate(out)

    def reference():
        out = []
        with torch.no_grad():
            for clip in clips:
                hs = model(torch.from_numpy(clip)[None], output_hidden_states=True).hidden_states
                out.append(np.stack([h[0].numpy().mean(0) for h in hs]))
        return np.stack(out)

    t_ours, a = best_time(ours)
    t_ref, b = best_time(reference)
    print(f"embed throughput, MERT-95M-shaped HubertModel (random weights), {SECONDS} s clips at {RATE} Hz, "
          f"{CLIPS} clips, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print(f"  housex embed step (batches of {BATCH}, masked mean)   {CLIPS / t_ours:6.2f} clips/s")
    print(f"  reference (one clip at a time, plain means)        {CLIPS / t_ref:6.2f} clips/s")
    print(f"  ratio                                              {t_ref / t_ours:6.2f}x   "
          f"(max |difference| {np.abs(a - b).max():.2e})")
    for n in (3000, 8300):
        print(f"  {n} clips at this rate: {n / (CLIPS / t_ours) / 3600:.1f} h on this CPU")
    print("  GPU clips/s: not measured (no GPU in this session)")


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.1f} s)")
