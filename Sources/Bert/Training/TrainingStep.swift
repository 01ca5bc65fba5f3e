import BertCompute
import Foundation

/// One optimizer step, the same for pretraining, fine-tuning and the benchmarks: the gradient
/// block zeroed, each micro-batch's gradient added (with its dropout masks drawn from the seed),
/// their average taken, summed over the job's ranks, the global norm clipped, the learning rate
/// read from the schedule, AdamW applied.
///
/// Data parallelism lives here and nowhere else: under N ranks each rank's body computes its share
/// of every micro-batch, scaled so that the shares' sum is the micro-batch's mean (the caller
/// knows its loss's normaliser); the gradient block is summed over the ranks (layer by layer while
/// the backward runs, with ``bucketed``), so every rank applies the same update and the model
/// equals one process's with the same global batch, to summation order.
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
    /// The job's processes (one, unless started by mpirun with the MPI build).
    public let communicator: Communicator
    /// Whether the gradients are summed over the ranks in buckets (the layers, last first) started
    /// while the backward still runs, instead of in one sum after it.
    public var bucketed = true
    /// Seconds the last step spent waiting for its gradient sums after its backward (0 alone),
    /// the wait for the slowest rank's backward included.
    public private(set) var reductionWait = 0.0
    /// Of ``reductionWait``, the seconds spent waiting for the slowest rank to finish its backward
    /// (a one-value sum every rank makes as soon as its backward is done).
    public private(set) var rankSkew = 0.0
    /// The gradient block's buckets in the order their gradients are final in a backward: the
    /// last layer with everything after it (pooler, heads), each earlier layer, then the rest (the
    /// embeddings, which the tied decoder also writes).
    let buckets: [Range<Int>]

    /// Steps over `parameters` with `config`'s dropout probabilities; throws when the gradient
    /// block does not fit in memory.
    public init(
        parameters: ParameterStore, config: BertConfig, optimizer: AdamW, schedule: LinearWarmupSchedule,
        peakLearningRate: Double, maxGradNorm: Double, seed: UInt64, communicator: Communicator = SingleProcess()
    ) throws {
        self.parameters = parameters
        gradients = try ParameterStore(layout: parameters.layout)
        self.optimizer = optimizer
        self.schedule = schedule
        self.peakLearningRate = peakLearningRate
        self.maxGradNorm = maxGradNorm
        dropoutProbabilities = (Float(config.hiddenDropoutProb), Float(config.attentionProbsDropoutProb))
        self.seed = seed
        self.communicator = communicator
        buckets = gradientBuckets(parameters.layout, layers: config.numHiddenLayers)
    }

    /// The dropout of micro-batch `index` (step × micro-batches + k): its masks a function of the
    /// seed and the index only, so a replayed or resumed step draws the same ones.
    public func dropout(microBatch index: Int) -> Dropout {
        Dropout(
            hiddenProbability: dropoutProbabilities.hidden, attentionProbability: dropoutProbabilities.attention,
            seed: Seeds.dropout(seed, microBatch: index))
    }

    /// Runs optimizer step `step` over `microBatches` micro-batches: `body(k, gradients, dropout)`
    /// computes this rank's share of micro-batch k, adds its gradient into `gradients` and returns
    /// its loss, each already scaled so that the ranks' shares sum to the micro-batch's mean (one
    /// process: the mean itself). `scale` multiplies this rank's gradient before the sum (a share
    /// whose mean is over its own rows: its rows over the micro-batch's). Returns the learning rate
    /// and each micro-batch's loss summed over the ranks. A loss that is not finite on any rank
    /// stops every rank before any update.
    @discardableResult
    public func run(
        step: Int, microBatches: Int = 1, scale: Float = 1,
        _ body: (Int, ParameterStore, Dropout) throws -> Double
    ) throws -> (learningRate: Double, losses: [Double]) {
        precondition(microBatches >= 1, "a step has at least one micro-batch")
        gradients.data.zero()
        // Each micro-batch's gradient is its own mean; the step's is their average.
        let factor = scale / Float(microBatches)
        let alone = communicator.size == 1
        let reduction = alone ? nil : BucketReduction(self, factor: factor)
        var losses: [Double] = []
        for k in 0..<microBatches {
            // Buckets go out during the last micro-batch's backward only: before it, every
            // gradient will still change.
            if k == microBatches - 1, bucketed, let reduction { gradients.gradientObserver = reduction }
            defer { gradients.gradientObserver = nil }
            let loss = try body(k, gradients, dropout(microBatch: step * microBatches + k))
            losses.append(loss)
            guard alone else { continue }
            guard loss.isFinite else {
                throw BertError.diverged(step: step + 1, loss: loss, advice: divergenceAdvice)
            }
        }
        if let reduction {
            let waited = Date()
            // Every layer's bucket goes out before the next collective, also on a rank whose
            // backward told no observer (an empty share, a share with nothing to predict, a
            // backward into another block): every rank then makes the same calls in the same order.
            if bucketed { reduction.layerFinished(0) }
            var arrived = [0.0]
            try communicator.sum(&arrived)
            rankSkew = Date().timeIntervalSince(waited)
            try reduction.finish()
            reductionWait = Date().timeIntervalSince(waited)
            try communicator.sum(&losses)
            for loss in losses where !loss.isFinite {
                throw communicator.everyRank(BertError.diverged(step: step + 1, loss: loss, advice: divergenceAdvice))
            }
        } else {
            scaleGradients(0..<gradients.data.count, by: factor)
        }
        clipGradientNorm(gradients, maxNorm: maxGradNorm)
        let lr = peakLearningRate * schedule.multiplier(at: step)
        optimizer.update(parameters, gradients: gradients, lr: lr)
        return (lr, losses)
    }

    /// gradients[range] ×= factor (nothing when it is 1).
    func scaleGradients(_ range: Range<Int>, by factor: Float) {
        if factor == 1 { return }
        let g = gradients.data.pointer
        for j in range { g[j] *= factor }
    }

    /// Rank 0's parameters (and the optimizer's moments and step) on every rank: a job starts,
    /// or resumes, from one model.
    public func broadcastState() throws {
        if communicator.size == 1 { return }
        try communicator.broadcast(parameters.data.buffer)
        try communicator.broadcast(optimizer.m.buffer)
        try communicator.broadcast(optimizer.v.buffer)
        var adamStep = Double(optimizer.step)
        try withUnsafeMutableBytes(of: &adamStep) { try communicator.broadcast($0, from: 0) }
        optimizer.restore(step: Int(adamStep))
    }
}

/// Whatever waits for a backward's gradients (the bucketed sum): told when each encoder layer's
/// backward is done, last layer first.
public protocol GradientObserver: AnyObject {
    /// Encoder layer `l`'s backward has written its gradients (and every later layer's, the
    /// pooler's and the heads').
    func layerFinished(_ l: Int)
}

/// One step's gradient sum in buckets: each bucket scaled by the step's factor and its sum started
/// as soon as its gradients are final, the sums poked along while the backward runs, the rest
/// started and all waited for at the end. Every rank starts the same buckets in the same order.
final class BucketReduction: GradientObserver {
    let trainer: TrainingStep
    let factor: Float
    var started = 0
    var pending: [PendingSum] = []
    var failure: Error?

    init(_ trainer: TrainingStep, factor: Float) {
        self.trainer = trainer
        self.factor = factor
    }

    func layerFinished(_ l: Int) {
        // Layer l's backward finishes bucket (layers - 1 - l): the buckets before it went out with
        // the layers after it.
        let through = trainer.buckets.count - 1 - (l + 1)
        do {
            for p in pending { try p.poke() }
            while started <= through && started < trainer.buckets.count - 1 { try start(started) }
        } catch { failure = failure ?? error }
    }

    func start(_ i: Int) throws {
        let r = trainer.buckets[i]
        let g = trainer.gradients.data.pointer
        trainer.scaleGradients(r, by: factor)
        pending.append(
            try trainer.communicator.startSum(UnsafeMutableBufferPointer(start: g + r.lowerBound, count: r.count)))
        started += 1
    }

    func finish() throws {
        if let failure {
            // No sum may still write into the gradients once this returns.
            for p in pending { try? p.wait() }
            throw failure
        }
        guard trainer.bucketed else {
            // One sum of the whole block (every rank makes the same calls: `bucketed` is the job's).
            trainer.scaleGradients(0..<trainer.gradients.data.count, by: factor)
            return try trainer.communicator.sum(trainer.gradients.data.buffer)
        }
        while started < trainer.buckets.count { try start(started) }
        for p in pending { try p.wait() }
    }
}

/// The gradient block's ranges in the order a backward finishes them (see `TrainingStep.buckets`):
/// [start of layer L−1, end), [start of L−2, start of L−1), …, [0, start of layer 0). One bucket
/// of everything when the layers are not laid out in order.
func gradientBuckets(_ layout: ParameterLayout, layers: Int) -> [Range<Int>] {
    var starts: [Int] = []
    for l in 0..<layers {
        let marker = "encoder.layer.\(l)."
        let offsets = layout.tensors.filter { $0.name.hasPrefix(marker) || $0.name.contains("." + marker) }
            .map(\.offset)
        guard let first = offsets.min() else { return [0..<layout.totalCount] }
        starts.append(first)
    }
    guard !starts.isEmpty, zip(starts, starts.dropFirst()).allSatisfy({ $0 < $1 }) else {
        return [0..<layout.totalCount]
    }
    var buckets: [Range<Int>] = []
    var end = layout.totalCount
    for start in starts.reversed() {
        buckets.append(start..<end)
        end = start
    }
    buckets.append(0..<end)
    return buckets
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
