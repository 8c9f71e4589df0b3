"""The training stage: a config and a shard manifest in, a fine-tuned model folder out.

Owns the launcher (run paths, the torchrun command; what the flow calls), the per-rank worker,
the loop as named steps (`loop`: set-up, one training step, end of epoch, finish), the
objective (loss, FGM), optimisation, checkpoints, the length-bucketed sampler, distributed
helpers, progress bars and rank 0's live tracking. It imports `evaluation` (the metrics that
select models), `data`, `model` and the ground floor; never the registry or anything above.
"""
