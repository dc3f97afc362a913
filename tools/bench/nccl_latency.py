#!/usr/bin/env python3
"""Latency of one small NCCL all-reduce between the GPUs of this host, as our multi-GPU decode step
uses it (docs/multi-gpu.md): `count` fp32 values (5120 = DeepSeek-V2's hidden size, one token), in
place, one process per GPU through PyTorch's NCCL, timed eagerly and as 120 all-reduces captured
in one CUDA graph (two per layer of a 60-layer decode step). NVLink multicast stays off.

  python3 tools/bench/nccl_latency.py --gpus 4 --count 5120 [--json out.json]
"""
import argparse
import json
import os
import time


def worker(rank, n, count, iters, port, queue):
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), NCCL_NVLS_ENABLE="0")
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=n, device_id=torch.device("cuda", rank))
    x = torch.ones(count, device="cuda")
    for _ in range(20):
        dist.all_reduce(x)
    torch.cuda.synchronize()
    dist.barrier()
    t = time.perf_counter()
    for _ in range(iters):
        dist.all_reduce(x)
    torch.cuda.synchronize()
    eager = (time.perf_counter() - t) / iters

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            dist.all_reduce(x)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(120):
            dist.all_reduce(x)
    graph.replay()
    torch.cuda.synchronize()
    dist.barrier()
    t = time.perf_counter()
    reps = 20
    for _ in range(reps):
        graph.replay()
    torch.cuda.synchronize()
    in_graph = (time.perf_counter() - t) / (reps * 120)
    if rank == 0:
        queue.put({"eager_us": eager * 1e6, "graph_us": in_graph * 1e6})
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpus", type=int, default=4)
    ap.add_argument("--count", type=int, default=5120)
    ap.add_argument("--iters", type=int, default=500)
    ap.add_argument("--port", type=int, default=29533)
    ap.add_argument("--json")
    args = ap.parse_args()
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(r, args.gpus, args.count, args.iters, args.port, queue))
             for r in range(args.gpus)]
    for p in procs:
        p.start()
    result = queue.get(timeout=120)
    for p in procs:
        p.join(timeout=30)
    result.update(gpus=args.gpus, count=args.count, proto=os.environ.get("NCCL_PROTO", "default"))
    print(f"NCCL all-reduce of {args.count} fp32 over {args.gpus} GPUs (NCCL_PROTO={result['proto']}): "
          f"{result['eager_us']:.1f} us eager, {result['graph_us']:.1f} us each inside a CUDA graph")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
