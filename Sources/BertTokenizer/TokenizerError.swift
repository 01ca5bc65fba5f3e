/// Errors from loading tokenizer files or encoding input. Each names the file or the problem.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// Nothing at the path.
    case fileNotFound(String)
    /// A file that exists but cannot be read: its path and why.
    case unreadable(String, String)
    /// A file whose contents are invalid: its path and what is wrong.
    case malformed(String, String)
    /// Something this tokenizer does not implement: where (usually a file's path) and what.
    case unsupported(String, String)
    /// A token the tokenizer needs (`[UNK]`, `[CLS]`, `[SEP]`) is not in the vocabulary.
    case missingToken(String)
    /// The truncation settings cannot be met for this input (with `tokenizers`' message).
    case truncation(String)

    public var description: String {
        switch self {
        case .fileNotFound(let path): return "\(path): file not found"
        case .unreadable(let path, let why): return "\(path): cannot read: \(why)"
        case .malformed(let path, let why): return "\(path): \(why)"
        case .unsupported(let path, let why): return "\(path): unsupported: \(why)"
        case .missingToken(let why): return why
        case .truncation(let why): return "Truncation error: \(why)"
        }
    }
}
