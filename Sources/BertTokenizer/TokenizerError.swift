/// Errors from loading tokenizer files or encoding input. Each names the file or the problem.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(String)
    case unreadable(String, String)
    case malformed(String, String)
    case unsupported(String, String)
    case missingToken(String)
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
