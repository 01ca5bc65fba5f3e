import BertCompute
import Foundation

/// The processes of one training job, as the trainer sees them: their count, this one's place, and
/// the few collective operations data-parallel training needs. `SingleProcess` is the job of one;
/// `BertMPI.MPICommunicator` (built with the MPI trait) is a job started by `mpirun`. The trainer
/// never names MPI: every rank calls the same operations in the same order.
public protocol Communicator: AnyObject, Sendable {
    /// This process's place in the job, 0..<size (rank 0 logs, evaluates and writes).
    var rank: Int { get }
    /// The processes in the job.
    var size: Int { get }
    /// The processes of the job on this host (threads per process default to cores / this).
    var localSize: Int { get }
    /// Replaces `values` with their sums over every rank.
    func sum(_ values: UnsafeMutableBufferPointer<Float>) throws
    /// Replaces `values` with their sums over every rank.
    func sum(_ values: inout [Double]) throws
    /// Starts replacing `values` with their sums over every rank; `values` must stay untouched
    /// until the returned reduction's `wait()`.
    func startSum(_ values: UnsafeMutableBufferPointer<Float>) throws -> PendingSum
    /// Rank `root`'s bytes, copied into `bytes` on every other rank (the same count everywhere).
    func broadcast(_ bytes: UnsafeMutableRawBufferPointer, from root: Int) throws
    /// Stops the whole job at once with `code` (a rank that failed must not leave the others
    /// waiting in a collective).
    func abort(code: Int32) -> Never
}

/// An error every rank of a job raises at the same point (settings that disagree, an
/// interruption, a loss that is not finite): the job ends in order, every rank leaving MPI and rank
/// 0 reporting it as one process would, instead of an abort that could cut rank 0's last save short.
public struct JobWideError: Error, CustomStringConvertible {
    /// What every rank raised.
    public let error: Error
    /// The error's own description.
    public var description: String { "\(error)" }
}

/// A sum started by ``Communicator/startSum(_:)``.
public protocol PendingSum: AnyObject {
    /// Lets the sum move on without waiting (collectives progress when the library is called).
    func poke() throws
    /// Waits until the sum is in the buffer.
    func wait() throws
}

/// The job of one process: every collective is the identity.
public final class SingleProcess: Communicator {
    /// The one process of a job.
    public init() {}
    /// 0.
    public var rank: Int { 0 }
    /// 1.
    public var size: Int { 1 }
    /// 1.
    public var localSize: Int { 1 }
    /// Leaves `values` as they are (the sum over one rank).
    public func sum(_ values: UnsafeMutableBufferPointer<Float>) throws {}
    /// Leaves `values` as they are (the sum over one rank).
    public func sum(_ values: inout [Double]) throws {}
    /// A finished sum (over one rank).
    public func startSum(_ values: UnsafeMutableBufferPointer<Float>) throws -> PendingSum { Done() }
    /// Leaves `bytes` as they are (rank 0's own).
    public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, from root: Int) throws {}
    /// Exits the process with `code`.
    public func abort(code: Int32) -> Never { exit(code) }

    final class Done: PendingSum {
        func poke() throws {}
        func wait() throws {}
    }
}

extension Communicator {
    /// Whether this process writes the job's output (rank 0).
    public var isLeader: Bool { rank == 0 }

    /// `error`, marked as raised by every rank at this point when the job has several.
    public func everyRank(_ error: Error) -> Error { size > 1 ? JobWideError(error: error) : error }

    /// This rank's share of `count` items split as evenly as ranks allow: consecutive positions,
    /// the first `count % size` ranks one more (a rank's share may be empty when count < size).
    public func share(of count: Int) -> Range<Int> { Self.share(of: count, rank: rank, size: size) }

    /// Rank `rank`'s share of `count` items among `size` ranks (see ``share(of:)``).
    public static func share(of count: Int, rank: Int, size: Int) -> Range<Int> {
        let base = count / size, extra = count % size
        let lower = rank * base + min(rank, extra)
        return lower..<(lower + base + (rank < extra ? 1 : 0))
    }

    /// Rank `rank`'s share of items with these costs (a sequence's tokens): consecutive items,
    /// cut where the running cost crosses each rank's equal part, every share at least one item
    /// when there are as many items as ranks. The slowest rank sets a step's pace, so shares of
    /// equal cost, not of equal count, keep the others from waiting.
    public static func share(ofCosts costs: [Int], rank: Int, size: Int) -> Range<Int> {
        let n = costs.count
        guard size > 1, n >= size else { return share(of: n, rank: rank, size: size) }
        let total = costs.reduce(0, +)
        // cuts[r]: the first item of rank r, where the running cost reaches r/size of the total,
        // kept past the previous rank's first and short of the room every later rank needs.
        var cuts = [0]
        var running = 0, i = 0
        for r in 1..<size {
            while i < n && running * size < total * r {
                running += costs[i]
                i += 1
            }
            cuts.append(min(max(i, cuts[r - 1] + 1), n - (size - r)))
        }
        cuts.append(n)
        return cuts[rank]..<cuts[rank + 1]
    }

    /// Rank 0's `values`, copied to every rank.
    public func broadcast(_ values: UnsafeMutableBufferPointer<Float>, from root: Int = 0) throws {
        try broadcast(UnsafeMutableRawBufferPointer(values), from: root)
    }

    /// Checks that every rank holds the same `text` (its settings, its data): a digest of rank 0's
    /// is sent to all, each compares its own, and all throw together when any differs.
    public func checkSame(_ text: String, what: String) throws {
        if size == 1 { return }
        var fingerprint = Fingerprint()
        fingerprint.add(text)
        let digest = fingerprint.value
        var leader = digest
        try withUnsafeMutableBytes(of: &leader) { try broadcast($0, from: 0) }
        var differing = [leader == digest ? 0.0 : 1.0]
        try sum(&differing)
        if differing[0] > 0 {
            throw JobWideError(
                error: BertError.invalidInput(
                    "the ranks of this job disagree on \(what): \(Int(differing[0])) of \(size) ranks differ from rank 0"
                        + (leader == digest ? "" : " (this one, rank \(rank), among them)")))
        }
    }
}

/// A 64-bit digest of texts (FNV-1a), for ranks to compare what they hold: not a secret.
struct Fingerprint {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325
    mutating func add(_ text: String) {
        for byte in text.utf8 { value = (value ^ UInt64(byte)) &* 0x100_0000_01B3 }
        value = (value ^ 0xFF) &* 0x100_0000_01B3  // a separator: "ab","c" differs from "a","bc"
    }
    /// The digest of `texts`, in order.
    static func of(_ texts: some Sequence<String>) -> UInt64 {
        var f = Fingerprint()
        for t in texts { f.add(t) }
        return f.value
    }
}
