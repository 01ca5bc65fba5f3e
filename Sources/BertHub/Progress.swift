import Foundation

/// A download's progress on standard error: a bar redrawn in place (at most ten times a second)
/// when stderr is a terminal, else one line when the file is whole, so logs stay readable.
final class Progress: @unchecked Sendable {
    let name: String
    private let terminal = isatty(2) == 1
    private var total: Int64?
    private var done: Int64 = 0
    private var resumedAt: Int64 = 0
    private var started = Date()
    private var lastDrawn = Date.distantPast

    init(name: String) { self.name = name }

    func start(total: Int64?, done: Int64) {
        self.total = total
        self.done = done
        resumedAt = done
        started = Date()
        if done > 0 { emit("\(name): resuming at \(megabytes(done))\n") }
    }

    func update(done: Int64) {
        self.done = done
        guard terminal, Date().timeIntervalSince(lastDrawn) >= 0.1 else { return }
        lastDrawn = Date()
        emit("\r\(bar())")
    }

    func finish() {
        let seconds = max(Date().timeIntervalSince(started), 1e-3)
        let rate = Double(done - resumedAt) / seconds / 1e6
        let line =
            "\(name): \(megabytes(done)) in \(String(format: "%.1f", seconds)) s "
            + "(\(String(format: "%.1f", rate)) MB/s)"
        emit(terminal ? "\r\(bar())\n" : "downloaded \(line)\n")
    }

    private func bar() -> String {
        guard let total, total > 0 else { return "\(name) \(megabytes(done))" }
        let fraction = min(1, Double(done) / Double(total))
        let width = 30, filled = Int(fraction * Double(width))
        return "\(name) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] "
            + "\(megabytes(done)) / \(megabytes(total)) \(Int(fraction * 100))%"
    }

    private func megabytes(_ n: Int64) -> String {
        n < 1_000_000 ? "\(n) bytes" : String(format: "%.1f MB", Double(n) / 1e6)
    }

    private func emit(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
}
