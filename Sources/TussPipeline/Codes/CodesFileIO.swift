import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A POSIX file descriptor with error messages that name the path; closed when dropped.
final class CodesFileDescriptor {
    let path: String
    private var fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit {
        if fd >= 0 { _ = codesSystemClose(fd) }
    }

    /// Opens an existing file for reading.
    static func openForReading(_ path: String) throws(CodesFileError) -> CodesFileDescriptor {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure(path, "cannot open for reading") }
        return CodesFileDescriptor(path: path, fd: fd)
    }

    /// Creates a new file that must not exist yet, readable and writable by its owner (and readable by others).
    static func createNew(_ path: String) throws(CodesFileError) -> CodesFileDescriptor {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure(path, "cannot create") }
        return CodesFileDescriptor(path: path, fd: fd)
    }

    /// The error for the failed call `action`, with the current `errno` text.
    static func failure(_ path: String, _ action: String) -> CodesFileError {
        let code = errno
        return .io(path: path, reason: "\(action): \(String(cString: strerror(code))) (errno \(code))")
    }

    /// Reads up to `count` bytes; an empty result means end of file.
    func read(upTo count: Int) throws(CodesFileError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        while true {
            let got = bytes.withUnsafeMutableBytes { codesSystemRead(fd, $0.baseAddress, count) }
            if got >= 0 { return Array(bytes.prefix(got)) }
            if errno != EINTR { throw Self.failure(path, "cannot read") }
        }
    }

    /// Writes all of `bytes` at the current position, or at `offset` when given.
    func write(_ bytes: [UInt8], at offset: Int? = nil) throws(CodesFileError) {
        var done = 0
        while done < bytes.count {
            let wrote = bytes.withUnsafeBytes { raw in
                let pointer = raw.baseAddress.map { $0 + done }
                if let offset {
                    return pwrite(fd, pointer, bytes.count - done, off_t(offset + done))
                }
                return codesSystemWrite(fd, pointer, bytes.count - done)
            }
            if wrote > 0 {
                done += wrote
            } else if wrote < 0 && errno == EINTR {
                continue
            } else {
                throw Self.failure(path, "cannot write")
            }
        }
    }

    /// Flushes the file to stable storage.
    func sync() throws(CodesFileError) {
        guard fsync(fd) == 0 else { throw Self.failure(path, "cannot flush to disk") }
    }

    /// Closes the descriptor, reporting a failed close (which can mean lost data).
    func close() throws(CodesFileError) {
        let fd = self.fd
        self.fd = -1
        guard fd >= 0, codesSystemClose(fd) == 0 else {
            if fd >= 0 { throw Self.failure(path, "cannot close") }
            return
        }
    }
}

/// `close(2)`, named apart from `CodesFileDescriptor.close()`.
private func codesSystemClose(_ fd: Int32) -> Int32 { close(fd) }

/// `read(2)`, named apart from `CodesFileDescriptor.read(upTo:)`.
private func codesSystemRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(fd, buffer, count)
}

/// `write(2)`, named apart from `CodesFileDescriptor.write(_:at:)`.
private func codesSystemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
    write(fd, buffer, count)
}
