import BertCompute
import Foundation

/// AdamW as BERT trains (and torch.optim.AdamW computes): decoupled weight decay, not applied to
/// biases and LayerNorm parameters. Its moments live in two blocks with the parameters' layout.
public final class AdamW: @unchecked Sendable {
    /// Decay rate of the first moment, the gradients' running mean (default 0.9).
    public var beta1: Double
    /// Decay rate of the second moment, the squared gradients' running mean (default 0.999).
    public var beta2: Double
    /// Added to √v̂ in the update's denominator (default 1e-6, BERT's).
    public var epsilon: Double
    /// Decoupled weight decay λ: θ ← θ − lr·λ·θ each update (default 0.01).
    public var weightDecay: Double
    /// First moments, one per parameter, in the layout's order.
    public let m: FloatBuffer
    /// Second moments, one per parameter, in the layout's order.
    public let v: FloatBuffer
    /// Updates applied so far (the bias corrections use it).
    public private(set) var step = 0
    /// Parameter ranges (offsets in the block) that receive weight decay.
    public let decayed: [Range<Int>]

    /// Zero moments for `layout`; weight decay applies to every tensor but biases and
    /// LayerNorm parameters.
    public init(
        layout: ParameterLayout, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-6,
        weightDecay: Double = 0.01
    ) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        m = FloatBuffer(count: layout.totalCount)
        v = FloatBuffer(count: layout.totalCount)
        decayed = layout.tensors.filter { !Self.isExemptFromDecay($0.name) }.map { $0.offset..<($0.offset + $0.count) }
    }

    /// BERT exempts biases and LayerNorm weights from weight decay.
    public static func isExemptFromDecay(_ name: String) -> Bool {
        name.hasSuffix(".bias") || name.contains("LayerNorm") || name.hasSuffix("_bias")
    }

    /// One update of `parameters` from `gradients` at learning rate `lr`.
    public func update(_ parameters: ParameterStore, gradients: ParameterStore, lr: Double) {
        step += 1
        let p = parameters.data.pointer, g = gradients.data.pointer
        let mp = m.pointer, vp = v.pointer
        let b1 = Float(beta1), b2 = Float(beta2)
        let correction1 = 1 - Foundation.pow(beta1, Double(step))
        let correction2 = 1 - Foundation.pow(beta2, Double(step))
        let stepSize = Float(lr / correction1)
        let sqrtCorrection2 = Float(correction2.squareRoot())
        let eps = Float(epsilon)
        // Decoupled weight decay first (θ ← θ − lr·λ·θ), as torch does.
        let decay = Float(1 - lr * weightDecay)
        if weightDecay != 0 {
            for r in decayed { for i in r { p[i] *= decay } }
        }
        for i in 0..<parameters.data.count {
            let gi = g[i]
            mp[i] = b1 * mp[i] + (1 - b1) * gi
            vp[i] = b2 * vp[i] + (1 - b2) * gi * gi
            let denom = vp[i].squareRoot() / sqrtCorrection2 + eps
            p[i] -= stepSize * mp[i] / denom
        }
    }

    /// Restores the state of a checkpoint.
    public func restore(step: Int) { self.step = step }
}

/// Scales the gradients so that their global L2 norm is at most `maxNorm` (as
/// torch.nn.utils.clip_grad_norm_); returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ gradients: ParameterStore, maxNorm: Double) -> Double {
    let g = gradients.data.pointer
    var sum = 0.0
    var i = 0
    let n = gradients.data.count
    while i < n {
        var acc = Vec16()
        let end = min(n, i + 4096)
        while i + 16 <= end { let v = loadVec(g + i); acc += v * v; i += 16 }
        sum += Double(acc.sum())
        while i < end { sum += Double(g[i]) * Double(g[i]); i += 1 }
    }
    let norm = sum.squareRoot()
    let coefficient = maxNorm / (norm + 1e-6)
    if coefficient < 1 {
        let c = Float(coefficient)
        for j in 0..<n { g[j] *= c }
    }
    return norm
}

/// Linear warm-up then linear decay to 0 (transformers' get_linear_schedule_with_warmup): the
/// multiplier of the base learning rate at optimizer step `step` (counted from 0).
public struct LinearWarmupSchedule: Sendable, Equatable {
    /// Steps over which the multiplier rises linearly from 0 to 1.
    public var warmupSteps: Int
    /// The step at which the multiplier is back to 0.
    public var totalSteps: Int
    /// A schedule of `warmupSteps` warm-up steps out of `totalSteps`.
    public init(warmupSteps: Int, totalSteps: Int) {
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }
    /// The multiplier at `step`: step / warmupSteps during warm-up, then falling linearly to 0 at
    /// ``totalSteps`` (0 after).
    public func multiplier(at step: Int) -> Double {
        if step < warmupSteps { return Double(step) / Double(max(1, warmupSteps)) }
        return max(0, Double(totalSteps - step) / Double(max(1, totalSteps - warmupSteps)))
    }
}
