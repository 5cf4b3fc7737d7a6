// llama.cpp's own answer to "how much memory would this take": its memory
// breakdown per buffer type (model weights, context = KV and recurrent
// state, compute buffers), the numbers its --fit uses. It is C++ API
// (src/llama-ext.h, a std::map), so this file gives it a C face for Rust.
// Read with a context created from a model loaded with no_alloc = true, it
// is a dry run: nothing is allocated.

#include "llama-ext.h"
#include "ggml-backend.h"

#include <cstdio>
#include <exception>

extern "C" {

struct lmtune_memory_row {
    char   buffer_type[64];
    char   device[64];
    int    is_host;
    size_t model;
    size_t context;
    size_t compute;
};

// Writes up to `cap` rows and returns how many buffer types there are
// (more than `cap`: call again with room for all), or -1 if llama.cpp threw.
long lmtune_memory_breakdown(const struct llama_context * ctx, struct lmtune_memory_row * rows, size_t cap) {
    try {
        const llama_memory_breakdown mb = llama_get_memory_breakdown(ctx);
        size_t i = 0;
        for (const auto & entry : mb) {
            ggml_backend_buffer_type_t buft = entry.first;
            if (i < cap) {
                lmtune_memory_row & r = rows[i];
                std::snprintf(r.buffer_type, sizeof(r.buffer_type), "%s", ggml_backend_buft_name(buft));
                ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
                std::snprintf(r.device, sizeof(r.device), "%s", dev ? ggml_backend_dev_name(dev) : "");
                r.is_host = ggml_backend_buft_is_host(buft) ? 1 : 0;
                r.model   = entry.second.model;
                r.context = entry.second.context;
                r.compute = entry.second.compute;
            }
            i++;
        }
        return (long) i;
    } catch (const std::exception &) {
        return -1;
    }
}

}
