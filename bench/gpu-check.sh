#!/usr/bin/env bash
# Proves GPU offload of llm-worker-rbee on a machine with an NVIDIA GPU, CUDA (nvcc) and CMake but no Node and
# no package registry: the CUDA backend is built there from node-llama-cpp's own llama.cpp source.
#
#   1. Here (Node, node_modules, dist built):   bash bench/gpu-check.sh pack
#      writes bench/.cache/gpu-kit/ (~30 MB): node.xz (this Node, xz'd), node-api.tar.xz (N-API headers),
#      node_modules.tar.xz (the worker's runtime packages, no prebuilt binaries), llama-src.tar.xz (node-llama-cpp's
#      llama.cpp release, patched like node-llama-cpp does, other GPU backends left out).
#   2. There, from the repository root, with bench/.cache/gpu-kit and dist carried:   bash bench/gpu-check.sh
#      unpacks the kit, builds llama-addon.node + ggml with GGML_CUDA for the local GPU (cmake, ~5 min), installs it
#      as node-llama-cpp's linux-x64-cuda binaries, then runs bench/gpu-check.mjs: the worker must report
#      gpu "cuda" with every layer on the GPU (--gpu-layers max), and decode tokens/s on the GPU against --device cpu.
#      Exit 0 when offload is proven. GPU_CHECK_CONFIGURE_ONLY=1 stops after cmake's configure step (for a dry run
#      anywhere: it then builds for the CPU and installs nothing).
#   With the device tool:  run(command="bash bench/gpu-check.sh", carry=["bench/.cache/gpu-kit","dist"], timeout_s=600)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KIT=$ROOT/bench/.cache/gpu-kit
RUN=$ROOT/bench/.cache/gpu-run

pack() {
  [ -f dist/daemons/worker/main.js ] || { echo "build first: npm run build" >&2; exit 1; }
  rm -rf "$KIT" && mkdir -p "$KIT"
  echo "packing Node $(node --version)"
  xz -T0 -6 -c "$(node -p process.execPath)" > "$KIT/node.xz"
  local inc
  inc=$(dirname "$(dirname "$(node -p process.execPath)")")/include/node
  [ -f "$inc/node_api.h" ] || inc=/usr/include/node
  tar -C "$inc" -cJf "$KIT/node-api.tar.xz" node_api.h node_api_types.h js_native_api.h js_native_api_types.h
  # the runtime dependency closure of the worker, without prebuilt binaries, maps and typings
  node bench/gpu-kit-deps.mjs koa @koa/router undici eventsource-parser prom-client node-llama-cpp node-addon-api > "$KIT/deps.txt"
  tar -cJf "$KIT/node_modules.tar.xz" --exclude='*.map' --exclude='*.d.ts' --exclude='*.md' \
    --exclude='node_modules/node-llama-cpp/llama/gitRelease.bundle' --exclude='node_modules/node-llama-cpp/templates' \
    --exclude='node_modules/node-llama-cpp/bins' $(cat "$KIT/deps.txt")
  local src
  src=$(mktemp -d)
  git init -q "$src/repo"
  git -C "$src/repo" fetch -q "$ROOT/node_modules/node-llama-cpp/llama/gitRelease.bundle"
  mkdir -p "$src/tree"
  git -C "$src/repo" archive FETCH_HEAD | tar -x -C "$src/tree"
  for p in node_modules/node-llama-cpp/llama/patches/*.diff; do patch -s -d "$src/tree" -p1 < "$p"; done
  (cd "$src/tree" && rm -rf tools examples models tests docs .github gguf-py conversion scripts requirements media benches .devops \
    ggml/src/ggml-{vulkan,opencl,sycl,hexagon,openvino,et,webgpu,virtgpu,metal,zdnn,cann,musa,zendnn,hip})
  tar -C "$src/tree" -cJf "$KIT/llama-src.tar.xz" .
  rm -rf "$src"
  du -ch "$KIT"/* dist | tail -1 | sed 's/total/kit + dist (the carry limit is 64 MiB)/'
}

check() {
  [ -f "$KIT/node.xz" ] || { echo "no kit at $KIT: run 'bash bench/gpu-check.sh pack' where Node is, and carry it" >&2; exit 1; }
  local configure_only=${GPU_CHECK_CONFIGURE_ONLY:-0}
  if [ "$configure_only" != 1 ]; then
    command -v nvidia-smi >/dev/null || { echo "no nvidia-smi: this is not an NVIDIA GPU machine" >&2; exit 1; }
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  fi
  mkdir -p "$RUN/bin" "$RUN/include"
  [ -x "$RUN/bin/node" ] || { xz -dc "$KIT/node.xz" > "$RUN/bin/node"; chmod +x "$RUN/bin/node"; }
  export PATH=$RUN/bin:$PATH
  echo "node $(node --version)"
  [ -d node_modules/node-llama-cpp ] || tar -xJf "$KIT/node_modules.tar.xz"
  tar -xJf "$KIT/node-api.tar.xz" -C "$RUN/include"
  # node-llama-cpp's CMake project, with the llama.cpp source beside it, in our own folder
  local src=$RUN/src
  if [ ! -f "$src/llama.cpp/CMakeLists.txt" ]; then
    rm -rf "$src" && mkdir -p "$src/llama.cpp"
    cp -r node_modules/node-llama-cpp/llama/{CMakeLists.txt,addon,cmake} "$src/"
    tar -xJf "$KIT/llama-src.tar.xz" -C "$src/llama.cpp"
  fi
  # one architecture (the local GPU's) and no FlashAttention kernels keep the CUDA build to a few minutes
  local gpu_flags=(-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=native -DGGML_CUDA_FA=OFF -DNLC_VARIANT=cuda.v0.4.0)
  [ "$configure_only" = 1 ] && gpu_flags=(-DNLC_VARIANT=v0.4.0)
  for d in /usr/local/cuda/bin /usr/local/cuda/lib64; do [ -d "$d" ] && PATH=$PATH:$d && export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}:$d; done
  local t0=$SECONDS
  cmake -S "$src" -B "$RUN/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_JS_INC="$RUN/include" \
    -DNLC_CURRENT_PLATFORM=linux-x64 -DNLC_TARGET_PLATFORM=linux-x64 -DGGML_BUILD_NUMBER=1 -DGGML_NATIVE=ON \
    -DGGML_OPENMP=OFF -DGGML_METAL=OFF -DGGML_CCACHE=OFF -DLLAMA_CURL=OFF -DLLAMA_HTTPLIB=OFF -DLLAMA_BUILD_BORINGSSL=OFF -DLLAMA_OPENSSL=OFF \
    "${gpu_flags[@]}" > "$RUN/configure.log" 2>&1 || { tail -40 "$RUN/configure.log"; exit 1; }
  echo "configured in $((SECONDS - t0)) s"
  [ "$configure_only" = 1 ] && { echo "configure only: stopping here"; exit 0; }
  cmake --build "$RUN/build" --config Release -j "$(nproc)" --target llama-addon > "$RUN/build.log" 2>&1 || { tail -60 "$RUN/build.log"; exit 1; }
  echo "built in $((SECONDS - t0)) s"
  # where node-llama-cpp looks for prebuilt binaries: llama-addon.node, its libraries (RPATH $ORIGIN) and metadata
  local bins=node_modules/node-llama-cpp/bins/linux-x64-cuda
  rm -rf "$bins" && mkdir -p "$bins"
  find "$RUN/build" \( -name 'llama-addon.node' -o -name '*.so' -o -name '*.so.*' \) -type f -exec cp {} "$bins/" \;
  printf '%s' '{"buildOptions":{"customCmakeOptions":{},"progressLogs":true,"platform":"linux","platformInfo":{"name":"Linux","version":""},"arch":"x64","gpu":"cuda","llamaCpp":{"repo":"ggml-org/llama.cpp","release":"v0.4.0"}}}' > "$bins/_nlcBuildMetadata.json"
  ls "$bins"
  node bench/gpu-check.mjs
}

case "${1:-check}" in
  pack) pack ;;
  check) check ;;
  *) echo "usage: bash bench/gpu-check.sh [pack|check]" >&2; exit 2 ;;
esac
