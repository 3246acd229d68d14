// CUDA C kernels of hcs (compiled at run time with NVRTC, once per device).
// Stacks are f32 [planes][y][x], contiguous. Borders follow SciPy's `reflect` (d c b a | a b c d).

#define HCS_INF __int_as_float(0x7f800000)

extern "C" {

__device__ __forceinline__ int reflect_index(int i, int n) {
    int period = 2 * n;
    int m = i % period;
    if (m < 0) m += period;
    if (m >= n) m = period - 1 - m;
    return m;
}

// out[i] = max over planes (starting at -inf, like the ndarray variant).
__global__ void project_max(const float* in, float* out, int planes, long long plane_px) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= plane_px) return;
    float m = -HCS_INF;
    for (int p = 0; p < planes; ++p) {
        float v = in[p * plane_px + i];
        m = v > m ? v : m;
    }
    out[i] = m;
}

// out[i] = sum over planes in f64, divided by `divisor` (mean) or weighted by `weights` (composite).
__global__ void weighted_planes(const float* in, const double* weights, float* out, int planes, long long plane_px,
                                double divisor) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= plane_px) return;
    double acc = 0.0;
    for (int p = 0; p < planes; ++p) {
        double w = weights ? weights[p] : 1.0;
        if (w != 0.0) acc += (double)in[p * plane_px + i] * w;
    }
    out[i] = (float)(acc / divisor);
}

// Per plane (blockIdx.y): sum and sum of squares of the 4-neighbour Laplacian (focus measure).
__global__ void laplacian_moments(const float* in, double* sums, int h, int w) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    int p = blockIdx.y;
    if (i >= (long long)h * w) return;
    const float* pl = in + (long long)p * h * w;
    int y = (int)(i / w), x = (int)(i % w);
    double l = (double)pl[reflect_index(y - 1, h) * w + x] + (double)pl[reflect_index(y + 1, h) * w + x] +
               (double)pl[y * w + reflect_index(x - 1, w)] + (double)pl[y * w + reflect_index(x + 1, w)] -
               4.0 * (double)pl[i];
    atomicAdd(&sums[2 * p], l);
    atomicAdd(&sums[2 * p + 1], l * l);
}

// 65536-bin counts of integer samples in 0..=65535; `*not_u16` is set when a sample is not one.
// blockIdx.y = plane; `per_plane` selects one table per plane or one for the stack.
__global__ void histogram_u16(const float* in, unsigned int* hist, int* not_u16, long long plane_px, int per_plane) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    int p = blockIdx.y;
    if (i >= plane_px) return;
    float v = in[p * plane_px + i];
    if (!(v >= 0.0f && v <= 65535.0f && v == floorf(v))) {
        *not_u16 = 1;
        return;
    }
    atomicAdd(&hist[(per_plane ? (long long)p : 0LL) * 65536 + (int)v], 1u);
}

// Linear stretch p_lo -> t_min, p_hi -> t_max, clipped; flat planes (p_hi <= p_lo) become t_min.
__global__ void stretch(float* data, const float* lo_hi, long long plane_px, float t_min, float t_max, int per_plane) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    int p = blockIdx.y;
    if (i >= plane_px) return;
    int k = per_plane ? p : 0;
    float lo = lo_hi[2 * k], hi = lo_hi[2 * k + 1];
    float* v = &data[p * plane_px + i];
    if (hi > lo) {
        float scale = (t_max - t_min) / (hi - lo);
        float s = __fadd_rn(__fmul_rn(__fsub_rn(*v, lo), scale), t_min);
        *v = fminf(fmaxf(s, t_min), t_max);
    } else {
        *v = t_min;
    }
}

// Mean of f x f blocks (the last blocks use the pixels there), accumulated in f64.
__global__ void block_mean(const float* in, float* out, int h, int w, int f, int dh, int dw) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    int p = blockIdx.y;
    if (i >= (long long)dh * dw) return;
    int by = (int)(i / dw), bx = (int)(i % dw);
    const float* pl = in + (long long)p * h * w;
    int y1 = min((by + 1) * f, h), x1 = min((bx + 1) * f, w);
    double s = 0.0;
    for (int y = by * f; y < y1; ++y)
        for (int x = bx * f; x < x1; ++x) s += (double)pl[y * w + x];
    out[(long long)p * dh * dw + i] = (float)(s / (double)((y1 - by * f) * (x1 - bx * f)));
}

// Min (is_max = 0) or max over the disk whose chord half-widths are half[0..=r], reflected borders.
__global__ void disk_extreme(const float* in, float* out, int h, int w, const int* half, int r, int is_max) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    int p = blockIdx.y;
    if (i >= (long long)h * w) return;
    int y = (int)(i / w), x = (int)(i % w);
    const float* pl = in + (long long)p * h * w;
    float acc = is_max ? -HCS_INF : HCS_INF;
    for (int dy = -r; dy <= r; ++dy) {
        int hw = half[dy < 0 ? -dy : dy];
        const float* row = pl + (long long)reflect_index(y + dy, h) * w;
        for (int dx = -hw; dx <= hw; ++dx) {
            float v = row[reflect_index(x + dx, w)];
            acc = is_max ? fmaxf(acc, v) : fminf(acc, v);
        }
    }
    out[(long long)p * h * w + i] = acc;
}

// data -= background replicated over f x f blocks, clamped at 0 (f = 1: no clamp, exact top-hat).
__global__ void subtract_background(float* data, const float* bg, int h, int w, int f, int dh, int dw) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    int p = blockIdx.y;
    if (i >= (long long)h * w) return;
    int y = (int)(i / w), x = (int)(i % w);
    float* v = &data[(long long)p * h * w + i];
    float b = bg[(long long)p * dh * dw + (long long)(y / f) * dw + x / f];
    float d = *v - b;
    *v = f == 1 ? d : fmaxf(d, 0.0f);
}

}
