import Bert
import BertCompute
import Foundation

#if MPI
    import BertMPI
#endif

/// The processes a training command runs in: one, or the N that `mpirun -np N` started (with the
/// MPI build). N processes that do not form one job (mpirun over a build without MPI, or an MPI
/// library other than mpirun's) are refused: each would train alone and write the same folder.
enum Job {
    /// The running command's job (one process until `run` starts another).
    nonisolated(unsafe) static var current: Communicator = SingleProcess()

    /// The ranks mpirun (Open MPI, or a PMI launcher such as MPICH's Hydra) says it started, when
    /// it started this process; nil when no launcher did.
    static var launchedSize: Int? {
        let env = ProcessInfo.processInfo.environment
        for key in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"] {
            if let n = env[key].flatMap({ Int($0) }) { return n }
        }
        return env["PMIX_RANK"] != nil ? 0 : nil
    }

    /// Starts the job for `command` and runs `body` with its communicator: threads default to this
    /// host's cores over its ranks; on success every rank leaves MPI together; a failing rank
    /// prints its error and stops the whole job at once (never a rank left waiting in a sum).
    static func run(_ command: String, threads: ThreadOption, _ body: (Communicator) throws -> Void) throws {
        let communicator = try start(command)
        current = communicator
        threads.apply()
        if communicator.size > 1 && threads.threads == nil {
            // The host's cores over its ranks, and never more than this rank is bound to (mpirun
            // binds each of 2 ranks to one core by default).
            let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
            Compute.threads = min(boundCores, max(1, cores / communicator.localSize))
        }
        guard communicator.size > 1 else {
            // mpirun -np 1 still made an MPI job: it ends with MPI_Finalize, or mpirun reports it.
            defer { finish(communicator) }
            return try body(communicator)
        }
        do {
            try body(communicator)
        } catch let shared as JobWideError {
            // Raised by every rank at the same point: all leave MPI in order, rank 0 reports it.
            finish(communicator)
            if communicator.isLeader { throw shared.error }
            exit(Bert.exitCode(for: shared.error).rawValue)
        } catch {
            // This rank alone: the others may be waiting in a sum, so the whole job stops now.
            warn("error: rank \(communicator.rank) of \(communicator.size): \(error)")
            communicator.abort(code: 1)
        }
        finish(communicator)
    }

    /// The cores this process may run on: its affinity mask (Linux's /proc/self/status
    /// "Cpus_allowed", hex digits with commas), else the active cores.
    static var boundCores: Int {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") })
        {
            let count = line.dropFirst("Cpus_allowed:".count).reduce(0) { n, c in
                n + (c.hexDigitValue?.nonzeroBitCount ?? 0)
            }
            if count > 0 { return count }
        }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }

    /// Said by rank 0 only (a line per rank would repeat it N times).
    static func note(_ message: String) {
        if current.isLeader { warn(message) }
    }

    /// "2 ranks x 1 thread": said first, so a user sees at once whether mpirun made one job.
    static func describe(_ communicator: Communicator) -> String {
        let t = Compute.threads
        let ranks = communicator.size == 1 ? "1 process" : "\(communicator.size) ranks"
        return "\(ranks) x \(t) thread\(t == 1 ? "" : "s")"
    }

    static func start(_ command: String) throws -> Communicator {
        let launched = launchedSize
        #if MPI
            guard let launched else { return SingleProcess() }
            let mpi = try MPICommunicator()
            if launched > 0 && mpi.size != launched {
                mpi.finalize()
                throw CLIError(
                    "\(command): mpirun started \(launched) processes, but MPI made a job of \(mpi.size): this bert is "
                        + "linked to another MPI library than the mpirun that started it")
            }
            return mpi
        #else
            if let launched, launched != 1 {
                throw CLIError(
                    "\(command): started by mpirun\(launched > 1 ? " as one of \(launched) processes" : ""), but this bert "
                        + "was built without MPI: each process would train alone and write the same folder. Build it with "
                        + "`swift build -c release --traits MPI` (needs libopenmpi-dev), or run it without mpirun")
            }
            return SingleProcess()
        #endif
    }

    static func finish(_ communicator: Communicator) {
        #if MPI
            (communicator as? MPICommunicator)?.finalize()
        #endif
    }

    /// Runs `work` on rank 0 alone (preparing data, learning a vocabulary), the others waiting for
    /// it; a failure there stops every rank (rank 0 with its own error).
    static func leaderFirst(_ communicator: Communicator, _ work: () throws -> Void) throws {
        var failure: Error?
        if communicator.isLeader {
            do { try work() } catch { failure = error }
        }
        var failed = [failure == nil ? 0.0 : 1]
        try communicator.sum(&failed)
        if let failure { throw communicator.everyRank(failure) }
        if failed[0] > 0 { throw communicator.everyRank(CLIError("rank 0 failed (its error is above)")) }
    }
}
