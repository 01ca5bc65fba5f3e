// Built only with the MPI trait (`swift build --traits MPI`): without it this target is empty and
// nothing imports MPI's headers, so a machine without MPI builds the package as before.
#if MPI
    import Bert
    import CMPI
    import Foundation

    /// The processes `mpirun` started, as a ``Communicator``: MPI initialised once, every collective
    /// over MPI_COMM_WORLD, an MPI error turned into a ``MPIError`` naming the operation.
    public final class MPICommunicator: Communicator, @unchecked Sendable {
        /// This process's rank in MPI_COMM_WORLD.
        public let rank: Int
        /// The ranks in MPI_COMM_WORLD.
        public let size: Int
        /// The ranks on this host (MPI_COMM_TYPE_SHARED).
        public let localSize: Int

        /// Initialises MPI; throws when it cannot. Call once per process, before any thread starts.
        public init() throws {
            var r: Int32 = 0, s: Int32 = 0, l: Int32 = 0
            try Self.check(bert_mpi_init(&r, &s, &l), "MPI_Init_thread")
            rank = Int(r)
            size = Int(s)
            localSize = max(1, Int(l))
        }

        /// Ends MPI for this process (every rank calls it once, after its last collective).
        public func finalize() { _ = bert_mpi_finalize() }

        // MPI counts are ints: larger buffers go in pieces.
        static let piece = 1 << 30

        /// Replaces `values` with their sums over every rank (MPI_Allreduce, in place).
        public func sum(_ values: UnsafeMutableBufferPointer<Float>) throws {
            guard let base = values.baseAddress else { return }
            for start in stride(from: 0, to: values.count, by: Self.piece) {
                let n = min(Self.piece, values.count - start)
                try Self.check(bert_mpi_allreduce_floats(base + start, Int32(n)), "MPI_Allreduce of \(n) floats")
            }
        }

        /// Replaces `values` with their sums over every rank.
        public func sum(_ values: inout [Double]) throws {
            let n = values.count
            try values.withUnsafeMutableBufferPointer { v in
                guard let base = v.baseAddress else { return }
                try Self.check(bert_mpi_allreduce_doubles(base, Int32(n)), "MPI_Allreduce of \(n) doubles")
            }
        }

        /// Starts an in-place sum (MPI_Iallreduce) over every rank.
        public func startSum(_ values: UnsafeMutableBufferPointer<Float>) throws -> PendingSum {
            let pending = Pending()
            guard let base = values.baseAddress else { return pending }
            for start in stride(from: 0, to: values.count, by: Self.piece) {
                let n = min(Self.piece, values.count - start)
                var request: UnsafeMutableRawPointer? = nil
                do {
                    try Self.check(
                        bert_mpi_start_allreduce_floats(base + start, Int32(n), &request),
                        "MPI_Iallreduce of \(n) floats")
                } catch {
                    try? pending.wait()  // the pieces already started finish before the error is seen
                    throw error
                }
                if let request { pending.requests.append(request) }
            }
            return pending
        }

        /// Rank `root`'s bytes on every rank (MPI_Bcast).
        public func broadcast(_ bytes: UnsafeMutableRawBufferPointer, from root: Int) throws {
            guard let base = bytes.baseAddress else { return }
            for start in stride(from: 0, to: bytes.count, by: Self.piece) {
                let n = min(Self.piece, bytes.count - start)
                try Self.check(bert_mpi_broadcast(base + start, Int32(n), Int32(root)), "MPI_Bcast of \(n) bytes")
            }
        }

        /// MPI_Abort over the whole job: every rank stops, mpirun exits with `code`.
        public func abort(code: Int32) -> Never {
            bert_mpi_abort(code)
            exit(code)  // MPI_Abort does not return; this satisfies the type checker.
        }

        /// The sums of one ``startSum(_:)``.
        final class Pending: PendingSum {
            var requests: [UnsafeMutableRawPointer] = []
            func poke() throws {
                for r in requests {
                    var done: Int32 = 0
                    try MPICommunicator.check(bert_mpi_test(r, &done), "MPI_Test")
                }
            }
            func wait() throws {
                // Every request is waited for (and freed), the first failure reported after.
                var first: Error?
                for r in requests {
                    do { try MPICommunicator.check(bert_mpi_wait(r), "MPI_Wait") } catch { first = first ?? error }
                }
                requests.removeAll()
                if let first { throw first }
            }
        }

        static func check(_ code: Int32, _ operation: String) throws {
            guard code != 0 else { return }
            var text = [CChar](repeating: 0, count: 512)
            bert_mpi_error_string(code, &text, Int32(text.count))
            let bytes = text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            throw MPIError(operation: operation, message: String(decoding: bytes, as: UTF8.self))
        }
    }

    /// An MPI call that failed: which one, and MPI's words for why.
    public struct MPIError: Error, CustomStringConvertible {
        /// The MPI operation (with its size).
        public var operation: String
        /// MPI_Error_string of the returned code.
        public var message: String
        /// "MPI: <operation> failed: <message>".
        public var description: String { "MPI: \(operation) failed: \(message)" }
    }
#endif
