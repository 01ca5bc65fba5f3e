import BertCompute
import Foundation

/// One optimizer step, the same for pretraining, fine-tuning and the benchmarks: the gradient
/// block zeroed, each micro-batch's gradient added (with its dropout masks drawn from the seed),
/// their average taken, the global norm clipped, the learning rate read from the schedule, AdamW
/// applied. A later data-parallel run averages the gradients across machines here, in one place.
public final class TrainingStep: @unchecked Sendable {
    /// The parameters each step updates.
    public let parameters: ParameterStore
    /// The gradient block (the parameters' layout), zeroed at the start of every step.
    public let gradients: ParameterStore
    /// The optimizer applying each update.
    public let optimizer: AdamW
    /// The learning rate's multiplier at each step.
    public let schedule: LinearWarmupSchedule
    /// The learning rate the schedule's multiplier scales.
    public let peakLearningRate: Double
    /// The global L2 norm each step's averaged gradient is clipped to.
    public let maxGradNorm: Double
    /// Hidden and attention dropout probabilities of the model (0: none).
    public let dropoutProbabilities: (hidden: Float, attention: Float)
    /// What each micro-batch's dropout masks derive from.
    public let seed: UInt64
    /// Said after "training stopped" when a loss is not finite.
    public var divergenceAdvice = "lower --lr"

    /// Steps over `parameters` with `config`'s dropout probabilities; throws when the gradient
    /// block does not fit in memory.
    public init(
        parameters: ParameterStore, config: BertConfig, optimizer: AdamW, schedule: LinearWarmupSchedule,
        peakLearningRate: Double, maxGradNorm: Double, seed: UInt64
    ) throws {
        self.parameters = parameters
        gradients = try ParameterStore(layout: parameters.layout)
        self.optimizer = optimizer
        self.schedule = schedule
        self.peakLearningRate = peakLearningRate
        self.maxGradNorm = maxGradNorm
        dropoutProbabilities = (Float(config.hiddenDropoutProb), Float(config.attentionProbsDropoutProb))
        self.seed = seed
    }

    /// The dropout of micro-batch `index` (step × micro-batches + k): its masks a function of the
    /// seed and the index only, so a replayed or resumed step draws the same ones.
    public func dropout(microBatch index: Int) -> Dropout {
        Dropout(
            hiddenProbability: dropoutProbabilities.hidden, attentionProbability: dropoutProbabilities.attention,
            seed: Seeds.dropout(seed, microBatch: index))
    }

    /// Runs optimizer step `step` over `microBatches` micro-batches: `body(k, gradients, dropout)`
    /// computes micro-batch k's mean loss and adds its gradient into `gradients`. Returns the
    /// learning rate used. A loss that is not finite stops before any update.
    @discardableResult
    public func run(
        step: Int, microBatches: Int = 1,
        _ body: (Int, ParameterStore, Dropout) throws -> Double
    ) throws -> Double {
        precondition(microBatches >= 1, "a step has at least one micro-batch")
        gradients.data.zero()
        for k in 0..<microBatches {
            let loss = try body(k, gradients, dropout(microBatch: step * microBatches + k))
            guard loss.isFinite else {
                throw BertError.diverged(step: step + 1, loss: loss, advice: divergenceAdvice)
            }
        }
        if microBatches > 1 {
            // Each micro-batch's gradient is its own mean; the step's is their average.
            let scale = 1 / Float(microBatches)
            for i in 0..<gradients.data.count { gradients.data.pointer[i] *= scale }
        }
        clipGradientNorm(gradients, maxNorm: maxGradNorm)
        let lr = peakLearningRate * schedule.multiplier(at: step)
        optimizer.update(parameters, gradients: gradients, lr: lr)
        return lr
    }
}

/// Every seed the project derives from a run's seed, in one place: each use gets its own stream,
/// so that changing one (say, the data order) never shifts another (the masks).
public enum Seeds {
    /// Dropout masks of one micro-batch (step × micro-batches + k).
    public static func dropout(_ seed: UInt64, microBatch index: Int) -> UInt64 {
        seed &+ 0xD0 &+ UInt64(index) &* 0x2545_F491_4F6C_DD1D
    }
    /// The order of the training examples in a fine-tuning epoch.
    public static func epochOrder(_ seed: UInt64, epoch: Int) -> UInt64 { seed &+ 0xF17E &+ UInt64(epoch) }
    /// The masks of pretraining instance `index` (and its epoch, with dynamic masking).
    public static func instanceMasks(_ seed: UInt64, instance index: Int, epoch: Int?) -> UInt64 {
        var s = seed &+ 0x3A5C &+ UInt64(index) &* 0x85EB_CA6B
        if let epoch { s = s &+ UInt64(epoch) &* 0x9E37_79B9 }
        return s
    }
    /// The masks of the held-out pretraining instances.
    public static func heldOutMasks(_ seed: UInt64) -> UInt64 { seed ^ 0xE7A1 ^ 0x3A5C }
    /// The instances made from chunk `k` of a pretraining corpus (chunk 0's is also the in-memory
    /// run's, so a corpus of one chunk gives the same instances either way).
    public static func chunkInstances(_ seed: UInt64, chunk k: Int) -> UInt64 {
        seed &+ 0xC4A2 &+ UInt64(k) &* 0x9E37_79B9_7F4A_7C15
    }
    /// The held-out documents' instances (their NotNext spans).
    public static func heldOutInstances(_ seed: UInt64) -> UInt64 { seed ^ 0xE7A1 }
    /// Which shard each instance of chunk `k` goes to.
    public static func shardPlacement(_ seed: UInt64, chunk k: Int) -> UInt64 {
        chunkInstances(seed ^ 0x5A4D, chunk: k)
    }
    /// The order of the pretraining instances (or of the shard files) in an epoch.
    public static func instanceOrder(_ seed: UInt64, epoch: Int) -> UInt64 { seed &+ 0x5EED &+ UInt64(epoch) }
    /// The order of the instances inside shard `s` in an epoch.
    public static func orderWithinShard(_ seed: UInt64, epoch: Int, shard s: Int) -> UInt64 {
        seed &+ 0x5EED &+ UInt64(epoch) &* 0x1_0000 &+ UInt64(s) &* 0x9E37_79B9
    }
}

/// A Fisher–Yates permutation of 0..<n from a seed.
func seededPermutation(_ n: Int, seed: UInt64) -> [Int] {
    var p = Array(0..<n)
    var rng = SeededRandom(seed: seed)
    for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
    return p
}

/// A request to stop, passed into long runs and checked at step boundaries (a signal handler or
/// another thread sets it).
public final class Cancellation: @unchecked Sendable {
    // A plain flag, not a lock: a signal handler may set it, and it is only read between steps.
    nonisolated(unsafe) private var cancelled = false
    /// A request not made yet.
    public init() {}
    /// Whether ``cancel()`` was called.
    public var isCancelled: Bool { cancelled }
    /// Asks the run to stop at its next step boundary; safe to call from a signal handler.
    public func cancel() { cancelled = true }
}
