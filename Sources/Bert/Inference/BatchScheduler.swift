import Dispatch
import Foundation

/// An input's output with its times: how long it waited in the queue and how long its batch
/// computed (the server's `x-queue-time` and `x-inference-time`).
public struct Scheduled<Output: Sendable>: Sendable {
    /// The batch function's output for this input.
    public var output: Output
    /// Seconds from `submit` to the start of the input's batch.
    public var queueSeconds: Double
    /// Seconds the input's batch computed.
    public var computeSeconds: Double
    /// Inputs in the batch.
    public var batchSize: Int
}

/// Why a submitted input got no result.
public enum SchedulerError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The queue already holds as many inputs as it may (the server answers 429).
    case overloaded(limit: Int)
    /// The scheduler was shut down before the input ran.
    case shutDown

    public var description: String {
        switch self {
        case .overloaded(let limit): return "the server is busy: \(limit) inputs are already waiting; try again"
        case .shutDown: return "the server is shutting down"
        }
    }
}

/// Dynamic batching across concurrent callers with a token budget, as text-embeddings-inference
/// batches: inputs wait in one FIFO queue; a compute thread takes from its head as many as fit
/// in `maxBatchTokens` (always at least one) and runs them as one batch, so concurrent requests
/// share forward passes while each caller gets exactly the result of its own input. The queue is
/// bounded (`maxQueued`: `submit` throws `overloaded` past it), and an input whose caller is
/// cancelled (a closed connection) leaves the queue unrun.
///
/// The batch function runs on the scheduler's one thread, never two at once: the compute inside
/// it has the cores to itself, with no oversubscription.
public final class BatchScheduler<Input: Sendable, Output: Sendable>: @unchecked Sendable {
    /// The budget of one batch, in tokens (inputs × their lengths).
    public let maxBatchTokens: Int
    /// Inputs that may wait at once (running ones not counted).
    public let maxQueued: Int
    private let run: ([Input]) throws -> [Output]
    private let gate: ComputeGate?
    private let condition = NSCondition()
    private var queue: [Entry] = []
    private var head = 0
    private var stopped = false
    private var thread: Thread?
    /// Batches run so far.
    private(set) public var batchesRun = 0
    /// Inputs run so far, in all batches.
    private(set) public var inputsRun = 0

    private final class Entry: @unchecked Sendable {
        let input: Input
        let tokens: Int
        var continuation: CheckedContinuation<Scheduled<Output>, any Error>?
        let submitted = DispatchTime.now()
        init(input: Input, tokens: Int) {
            self.input = input
            self.tokens = tokens
        }
    }

    /// A scheduler running `run` on batches of at most `maxBatchTokens` tokens; `run` returns one
    /// output per input, in order (or throws, failing every input of that batch). Schedulers that
    /// share a `gate` (several models in one server) run one batch at a time between them, in
    /// the order they asked.
    public init(
        maxBatchTokens: Int, maxQueued: Int, gate: ComputeGate? = nil, run: @escaping ([Input]) throws -> [Output]
    ) {
        self.maxBatchTokens = max(1, maxBatchTokens)
        self.maxQueued = max(1, maxQueued)
        self.gate = gate
        self.run = run
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "bert-batches"
        self.thread = thread
        thread.start()
    }

    /// Inputs waiting now.
    public var queued: Int {
        condition.lock()
        defer { condition.unlock() }
        return queue.count - head
    }

    /// The output for `input`, whose length is `tokens`, computed in a batch with whatever else
    /// is waiting. Throws `SchedulerError.overloaded` when the queue is full, `CancellationError`
    /// when the calling task is cancelled before its input ran.
    public func submit(_ input: Input, tokens: Int) async throws -> Scheduled<Output> {
        let entry = Entry(input: input, tokens: max(1, tokens))
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation {
                (continuation: CheckedContinuation<Scheduled<Output>, any Error>) in
                condition.lock()
                // Checked and appended under one lock: the queue never holds more than maxQueued.
                let refusal: (any Error)? =
                    stopped
                    ? SchedulerError.shutDown
                    : Task.isCancelled
                        ? CancellationError()
                        : queue.count - head >= maxQueued ? SchedulerError.overloaded(limit: maxQueued) : nil
                if let refusal {
                    condition.unlock()
                    continuation.resume(throwing: refusal)
                    return
                }
                entry.continuation = continuation
                queue.append(entry)
                condition.signal()
                condition.unlock()
            }
        } onCancel: {
            condition.lock()
            // Still waiting: out of the queue, unrun. Running: its result is dropped.
            if let index = queue[head...].firstIndex(where: { $0 === entry }), let c = entry.continuation {
                queue.remove(at: index)
                entry.continuation = nil
                condition.unlock()
                c.resume(throwing: CancellationError())
                return
            }
            condition.unlock()
        }
    }

    /// Stops taking inputs, fails those still waiting, and lets the batch in progress finish.
    public func shutDown() {
        condition.lock()
        stopped = true
        let waiting = queue[head...].compactMap { $0.continuation }
        queue.removeAll()
        head = 0
        condition.broadcast()
        condition.unlock()
        for c in waiting { c.resume(throwing: SchedulerError.shutDown) }
    }

    private func loop() {
        while true {
            condition.lock()
            while queue.count == head && !stopped { condition.wait() }
            if stopped && queue.count == head {
                condition.unlock()
                return
            }
            if let gate {
                // The batch is taken once the cores are free, so inputs that came meanwhile join it.
                condition.unlock()
                gate.enter()
                condition.lock()
                if queue.count == head {  // cancelled or shut down while waiting
                    condition.unlock()
                    gate.leave()
                    continue
                }
            }
            // From the head, as many as fit the budget; always one, however long.
            var batch: [Entry] = []
            var tokens = 0
            while head < queue.count {
                let next = queue[head]
                if !batch.isEmpty && tokens + next.tokens > maxBatchTokens { break }
                batch.append(next)
                tokens += next.tokens
                head += 1
            }
            if head > 1024 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            condition.unlock()

            let started = DispatchTime.now()
            let result = Result { try run(batch.map(\.input)) }
            let computeSeconds = Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9
            gate?.leave()
            condition.lock()
            batchesRun += 1
            inputsRun += batch.count
            let continuations = batch.map { entry -> CheckedContinuation<Scheduled<Output>, any Error>? in
                defer { entry.continuation = nil }
                return entry.continuation
            }
            condition.unlock()
            switch result {
            case .success(let outputs) where outputs.count == batch.count:
                for (entry, (c, output)) in zip(batch, zip(continuations, outputs)) {
                    let queued = Double(started.uptimeNanoseconds - entry.submitted.uptimeNanoseconds) / 1e9
                    c?.resume(
                        returning: Scheduled(
                            output: output, queueSeconds: queued, computeSeconds: computeSeconds, batchSize: batch.count
                        ))
                }
            case .success(let outputs):
                let error = SchedulerBatchError(
                    message: "the batch gave \(outputs.count) outputs for \(batch.count) inputs")
                for c in continuations { c?.resume(throwing: error) }
            case .failure(let error):
                for c in continuations { c?.resume(throwing: error) }
            }
        }
    }
}

/// One batch at a time across several schedulers, first come first served: the schedulers of
/// the models one server holds share a gate, so their batches never compute at once (each batch
/// has every compute thread; the cores are never oversubscribed).
public final class ComputeGate: @unchecked Sendable {
    private let condition = NSCondition()
    private var issued = 0
    private var serving = 0

    /// A gate no one holds.
    public init() {}

    /// Waits until every earlier caller has left, then holds the gate.
    public func enter() {
        condition.lock()
        let ticket = issued
        issued += 1
        while serving != ticket { condition.wait() }
        condition.unlock()
    }

    /// Lets the next caller in.
    public func leave() {
        condition.lock()
        serving += 1
        condition.broadcast()
        condition.unlock()
    }
}

/// A batch function that broke its contract (a wrong number of outputs).
public struct SchedulerBatchError: Error, CustomStringConvertible, Sendable {
    /// What was wrong.
    public let message: String
    public var description: String { message }
}
