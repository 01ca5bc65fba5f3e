/// An error with a message meant for the user: what went wrong, and where.
public struct BertError: Error, CustomStringConvertible, Sendable, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
