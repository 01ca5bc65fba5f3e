/// What went wrong, and where: every error the model library throws. Each case carries what a
/// caller needs to act on it (the file, the line, the tensor and its shapes, the key); its
/// description is the message a user reads.
public enum BertError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A file or folder that is missing or cannot be opened, read, written or created.
    case fileAccess(path: String, reason: String)
    /// A file whose content we cannot use: its path (with `:line` when the reader knows it) and
    /// what is wrong.
    case malformedFile(path: String, reason: String)
    /// A configuration (config.json, a preset, settings beside a model) with a value we cannot use.
    case invalidConfig(source: String, reason: String)
    /// A checkpoint tensor that is missing, or whose shape or type is not the model's.
    case tensorMismatch(file: String, tensor: String, expected: [Int]?, found: [Int]?, reason: String)
    /// A folder that is not the model asked for (no classifier, no config, another architecture).
    case wrongModel(path: String, reason: String)
    /// An input or option a caller passed that does not fit (a batch, labels, examples).
    case invalidInput(String)
    /// Training stopped before an update: a loss was not finite.
    case diverged(step: Int, loss: Double, advice: String)
    /// A run stopped on request, its state saved.
    case interrupted(step: Int, saved: String)
    /// More memory than this machine has, or than can be allocated.
    case outOfMemory(String)
    /// An output the call would replace that the user did not say may be replaced (or that is a
    /// file where a folder is needed, or the other way round).
    case outputExists(path: String, reason: String)
    /// A folder another command is working in (its lock holder named).
    case locked(path: String, holder: String)
    /// A value that is not a finite number where one is needed (weights, outputs, losses).
    case notFinite(what: String, advice: String)
    /// A pickled checkpoint that names a Python callable a state dict never needs (`os.system`):
    /// refused unread, since unpickling it would run code.
    case unsafePickle(path: String, global: String)

    public var description: String {
        switch self {
        case .fileAccess(let path, let reason), .malformedFile(let path, let reason), .wrongModel(let path, let reason),
            .outputExists(let path, let reason):
            return "\(path): \(reason)"
        case .unsafePickle(let path, let global):
            return "\(path): the pickle names \(global), which a state dict never needs; refused, since loading it "
                + "could run code (only tensors, storages and ordered dicts are read)"
        case .locked(let path, let holder):
            return "\(path): in use by \(holder); wait for it to finish or stop it first"
        case .notFinite(let what, let advice):
            return "\(what) is not a finite number (NaN or infinite): \(advice)"
        case .invalidConfig(let source, let reason):
            return "\(source): \(reason)"
        case .tensorMismatch(let file, _, _, _, let reason):
            return "\(file): \(reason)"
        case .invalidInput(let message), .outOfMemory(let message):
            return message
        case .diverged(let step, let loss, let advice):
            return "the loss is \(loss) at step \(step): training stopped (\(advice))"
        case .interrupted(let step, let saved):
            return "interrupted: \(saved) at step \(step); continue with --resume"
        }
    }

    /// The message (as `description`).
    public var message: String { description }
}
