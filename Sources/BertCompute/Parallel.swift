import Foundation

/// The kernels' threads.
public enum Compute {
    /// The number of worker threads kernels split their work over (default: the active cores).
    /// Set it once at start-up (e.g. from a `--threads` flag); kernels read it on every call.
    /// Values are clamped to 1...`maxThreads`: kernels size their scratch memory per thread, and
    /// threads past the cores only contend for them.
    public static var threads: Int {
        get { configuredThreads }
        set { configuredThreads = min(max(1, newValue), maxThreads) }
    }
    /// The most threads `threads` takes: four per active core.
    public static var maxThreads: Int { 4 * max(1, ProcessInfo.processInfo.activeProcessorCount) }
    @usableFromInline nonisolated(unsafe) static var configuredThreads = max(
        1, ProcessInfo.processInfo.activeProcessorCount)

    /// Runs `body(i)` for i in 0..<count on up to `threads` threads and waits for all of them.
    /// Iterations are handed out dynamically, so uneven items (attention of different lengths) balance.
    @inlinable
    public static func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        parallelForWorker(count) { _, i in body(i) }
    }

    /// Like `parallelFor`, but also passes the worker's index (0..<min(workers, count)), so each
    /// worker can use its own scratch memory. `workers` (default: `threads` now) must be the count
    /// the scratch was sized for: `threads` may have changed since.
    @inlinable
    public static func parallelForWorker(
        _ count: Int, workers maxWorkers: Int? = nil, _ body: (_ worker: Int, _ item: Int) -> Void
    ) {
        if count <= 0 { return }
        let workers = min(maxWorkers ?? threads, count)
        if workers <= 1 {
            for i in 0..<count { body(0, i) }
            return
        }
        withoutActuallyEscaping(body) { escaping in
            nonisolated(unsafe) let body = escaping
            let next = AtomicCounter()
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                while true {
                    let i = next.increment()
                    if i >= count { break }
                    body(w, i)
                }
            }
        }
    }

    /// Splits 0..<total into `parts` contiguous ranges of nearly equal size, each a multiple of
    /// `granularity` except the last, and runs `body(range)` on each in parallel.
    @inlinable
    public static func parallelRanges(
        _ total: Int, parts: Int, granularity: Int = 1,
        _ body: (Range<Int>) -> Void
    ) {
        if total <= 0 { return }
        let units = (total + granularity - 1) / granularity
        let n = max(1, min(parts, units))
        if n == 1 { body(0..<total); return }
        parallelFor(n) { p in
            let lo = min(total, (units * p / n) * granularity)
            let hi = min(total, (units * (p + 1) / n) * granularity)
            if lo < hi { body(lo..<hi) }
        }
    }
}

/// A lock-protected counter: claims of work items are rare (one per item), so a mutex is cheap enough.
public final class AtomicCounter: @unchecked Sendable {
    private var value = 0
    private let lock: UnsafeMutablePointer<pthread_mutex_t>
    /// A counter starting at 0.
    public init() {
        lock = .allocate(capacity: 1)
        pthread_mutex_init(lock, nil)
    }
    deinit {
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }
    /// Returns the current value and increments it.
    public func increment() -> Int {
        pthread_mutex_lock(lock)
        let v = value
        value += 1
        pthread_mutex_unlock(lock)
        return v
    }
}
