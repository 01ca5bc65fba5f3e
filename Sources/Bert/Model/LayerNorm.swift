import BertCompute

/// torch.nn.LayerNorm over the hidden size (biased variance, as torch).
public struct LayerNorm: Sendable {
    /// The scale γ, [size] (1 at initialisation).
    public let weight: TensorRef
    /// The shift β, [size] (0 at initialisation).
    public let bias: TensorRef

    init(_ layout: inout ParameterLayout, _ prefix: String, size: Int) {
        weight = layout.add(prefix + ".weight", [size])
        bias = layout.add(prefix + ".bias", [size])
    }

    var size: Int { weight.count }

    /// y = LayerNorm(x) on `rows`; `y` may equal `x`. `statistics` (training) keeps each row's
    /// mean and 1/std for the backward.
    func forward(
        _ x: UnsafePointer<Float>, output y: UnsafeMutablePointer<Float>, rows: Range<Int>, eps: Float,
        parameters p: ParameterStore, statistics: RowStatistics? = nil
    ) {
        Kernels.layerNorm(
            x, output: y, gamma: p[weight], beta: p[bias], eps: eps, cols: size, rows: rows,
            mean: statistics?.mean, rstd: statistics?.rstd)
    }

    /// z = x + residual (stored back into `x`, the LayerNorm's input), then y = LayerNorm(z); `y`
    /// may equal `residual`: BERT's post-LayerNorm residual block.
    func residualForward(
        _ x: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>,
        output y: UnsafeMutablePointer<Float>, rows: Range<Int>, eps: Float,
        parameters p: ParameterStore, statistics: RowStatistics? = nil
    ) {
        Kernels.residualLayerNorm(
            x, residual: residual, output: y, gamma: p[weight], beta: p[bias], eps: eps,
            cols: size, rows: rows, mean: statistics?.mean, rstd: statistics?.rstd)
    }

    /// The backward of `forward` (and of `residualForward` with respect to z): writes dx (may
    /// alias dy) and adds into the gradients of the scale and shift.
    func backward(
        _ dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, statistics: RowStatistics,
        inputGradient dx: UnsafeMutablePointer<Float>, rows: Int,
        parameters p: ParameterStore, gradients g: ParameterStore
    ) {
        Kernels.layerNormBackward(
            dy: dy, x: x, mean: statistics.mean, rstd: statistics.rstd, gamma: p[weight],
            dx: dx, dgamma: g[weight], dbeta: g[bias], cols: size, rows: 0..<rows)
    }
}

/// A LayerNorm's saved per-row mean and 1/√(var + eps).
struct RowStatistics {
    let mean: UnsafeMutablePointer<Float>
    let rstd: UnsafeMutablePointer<Float>
}
