import Foundation

/// A restricted unpickler for the subset of pickle (protocols 2-5) that `torch.save` writes.
///
/// It never executes code: only the globals listed in `call(_:_:)` are understood, anything else is an error.
/// Mutable containers live in arenas and are referenced by index, so the machine's values are flat (no deep
/// recursive destruction) and Python's sharing semantics hold (a memoized list later appended to is seen
/// through every reference). Every length, index, count and depth is bounded before use.
struct Unpickler {
    /// Limits that keep hostile input from exhausting memory, stack or time.
    enum Limits {
        static let maxStack = 1 << 20
        static let maxMemo = 1 << 22
        static let maxNesting = 200
        static let maxValueNodes = 8 << 20
        static let maxDimensions = 64
        static let maxGlobalLine = 1024
    }

    /// A storage referenced by a persistent id: its element type and bytes (at least `numel` elements).
    struct Storage {
        let dtype: WeightDType
        let numel: Int
        let bytes: Data
    }

    /// A machine value. Containers are indices into the arenas.
    private enum Item {
        case none
        case bool(Bool)
        case int(Int64)
        case float(Double)
        case string(String)
        case bytes([UInt8])
        case list(Int)
        case tuple(Int)
        case dict(Int)
        case tensor(WeightTensor)
        case storage(Storage)
        case global(module: String, name: String)
    }

    /// A hashable image of a dict key, following Python's equality for the types that can be keys.
    private enum Key: Hashable {
        case none
        case int(Int64)
        case float(UInt64)
        case string(String)
        case bytes([UInt8])
        case tuple([Key])
        case global(String, String)
    }

    private struct DictObject {
        var keys: [Item] = []
        var values: [Item] = []
        var index: [Key: Int] = [:]
    }

    private let bytes: UnsafeRawBufferPointer
    private let source: String
    private let loadStorage: (_ key: String) throws -> Data
    private var position = 0
    private var stack: [Item] = []
    private var marks: [Int] = []
    private var memo: [UInt32: Item] = [:]
    private var lists: [[Item]] = []
    private var tuples: [[Item]] = []
    private var dicts: [DictObject] = []
    private var storages: [String: Storage] = [:]
    /// Bytes still allowed for materialising non-contiguous tensors.
    private var copyBudget: Int

    /// Decodes the pickle in `bytes`; `loadStorage` returns the raw bytes of the storage with a given key.
    static func unpickle(
        _ bytes: UnsafeRawBufferPointer, source: String, copyBudget: Int, loadStorage: @escaping (String) throws -> Data
    ) throws -> PickleValue {
        var machine = Unpickler(bytes: bytes, source: source, loadStorage: loadStorage, copyBudget: copyBudget)
        return try machine.run()
    }

    private init(bytes: UnsafeRawBufferPointer, source: String, loadStorage: @escaping (String) throws -> Data, copyBudget: Int) {
        self.bytes = bytes
        self.source = source
        self.loadStorage = loadStorage
        self.copyBudget = copyBudget
    }

    // MARK: Errors

    private func invalid(_ reason: String) -> WeightsError {
        WeightsError.invalidCheckpoint(path: source, reason: "pickle byte \(position): \(reason)")
    }

    private func unsupported(_ feature: String) -> WeightsError {
        WeightsError.unsupportedCheckpoint(path: source, feature: feature)
    }

    // MARK: Reading bytes

    private mutating func take(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, bytes.count - position >= count else { throw invalid("truncated (needs \(count) more bytes)") }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + count)])
    }

    private mutating func u8() throws -> UInt8 {
        try take(1)[0]
    }

    private mutating func u16() throws -> UInt16 {
        UInt16(littleEndian: try take(2).loadUnaligned(as: UInt16.self))
    }

    private mutating func u32() throws -> UInt32 {
        UInt32(littleEndian: try take(4).loadUnaligned(as: UInt32.self))
    }

    private mutating func u64() throws -> UInt64 {
        UInt64(littleEndian: try take(8).loadUnaligned(as: UInt64.self))
    }

    /// A length read as UInt64, refused when longer than what is left of the pickle.
    private mutating func length(_ value: UInt64) throws -> Int {
        guard value <= UInt64(bytes.count - position) else { throw invalid("length \(value) runs past the end of the pickle") }
        return Int(value)
    }

    private mutating func utf8String(count: Int) throws -> String {
        let raw = try take(count)
        guard let string = String(validating: raw, as: UTF8.self) else { throw invalid("string is not valid UTF-8") }
        return string
    }

    private mutating func latin1String(count: Int) throws -> String {
        let raw = try take(count)
        var string = ""
        string.unicodeScalars.append(contentsOf: raw.map { Unicode.Scalar($0) })
        return string
    }

    private mutating func line() throws -> String {
        let start = position
        while position < bytes.count, bytes[position] != 0x0A {
            guard position - start < Limits.maxGlobalLine else { throw invalid("GLOBAL name longer than \(Limits.maxGlobalLine) bytes") }
            position += 1
        }
        guard position < bytes.count else { throw invalid("GLOBAL name without newline") }
        let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<position])
        position += 1
        guard let string = String(validating: raw, as: UTF8.self) else { throw invalid("GLOBAL name is not valid UTF-8") }
        return string
    }

    /// A two's-complement little-endian integer of `count` bytes (LONG1/LONG4).
    private mutating func longInteger(count: Int) throws -> Int64 {
        guard count <= 8 else { throw unsupported("an integer wider than 64 bits") }
        let raw = try take(count)
        guard count > 0 else { return 0 }
        var value: UInt64 = 0
        for i in 0..<count {
            value |= UInt64(raw[i]) << (8 * UInt64(i))
        }
        if count < 8, raw[count - 1] & 0x80 != 0 {
            value |= UInt64.max << (8 * UInt64(count))
        }
        return Int64(bitPattern: value)
    }

    // MARK: Stack

    private mutating func push(_ item: Item) throws {
        guard stack.count < Limits.maxStack else { throw invalid("stack deeper than \(Limits.maxStack)") }
        stack.append(item)
    }

    /// The floor below which plain pops may not reach (the innermost mark).
    private var fence: Int { marks.last ?? 0 }

    private mutating func pop() throws -> Item {
        guard stack.count > fence else { throw invalid("stack underflow") }
        return stack.removeLast()
    }

    private func top() throws -> Item {
        guard stack.count > fence, let item = stack.last else { throw invalid("stack underflow") }
        return item
    }

    /// Pops everything above the innermost mark, and the mark.
    private mutating func popToMark() throws -> [Item] {
        guard let mark = marks.popLast() else { throw invalid("no MARK on the stack") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    private mutating func newTuple(_ items: [Item]) -> Item {
        tuples.append(items)
        return .tuple(tuples.count - 1)
    }

    private mutating func newDict() -> Item {
        dicts.append(DictObject())
        return .dict(dicts.count - 1)
    }

    private mutating func memoize(_ index: UInt32) throws {
        let item = try top()
        guard memo.count < Limits.maxMemo || memo[index] != nil else { throw invalid("memo larger than \(Limits.maxMemo)") }
        memo[index] = item
    }

    private mutating func recall(_ index: UInt32) throws {
        guard let item = memo[index] else { throw invalid("memo entry \(index) is undefined") }
        try push(item)
    }

    // MARK: Containers

    private func key(for item: Item, depth: Int = 0) throws -> Key {
        guard depth < Limits.maxNesting else { throw invalid("dict key nested too deeply") }
        switch item {
        case .none: return .none
        case let .bool(value): return .int(value ? 1 : 0)
        case let .int(value): return .int(value)
        case let .float(value):
            if let exact = Int64(exactly: value) { return .int(exact) }
            return .float((value == 0 ? 0 : value).bitPattern)
        case let .string(value): return .string(value)
        case let .bytes(value): return .bytes(value)
        case let .tuple(id): return .tuple(try tuples[id].map { try key(for: $0, depth: depth + 1) })
        case let .global(module, name): return .global(module, name)
        case .list, .dict, .tensor, .storage: throw unsupported("an unhashable dict key")
        }
    }

    private mutating func setItem(dict id: Int, key: Item, value: Item) throws {
        let hashKey = try self.key(for: key)
        if let existing = dicts[id].index[hashKey] {
            dicts[id].values[existing] = value
        } else {
            dicts[id].index[hashKey] = dicts[id].keys.count
            dicts[id].keys.append(key)
            dicts[id].values.append(value)
        }
    }

    private func dictID(_ item: Item, for op: String) throws -> Int {
        guard case let .dict(id) = item else { throw invalid("\(op) target is not a dict") }
        return id
    }

    private func listID(_ item: Item, for op: String) throws -> Int {
        guard case let .list(id) = item else { throw invalid("\(op) target is not a list") }
        return id
    }

    private func tupleItems(_ item: Item, what: String) throws -> [Item] {
        guard case let .tuple(id) = item else { throw invalid("\(what) is not a tuple") }
        return tuples[id]
    }

    private func int(_ item: Item, what: String) throws -> Int {
        switch item {
        case let .int(value):
            guard let int = Int(exactly: value) else { throw invalid("\(what) out of range") }
            return int
        case let .bool(value): return value ? 1 : 0
        default: throw invalid("\(what) is not an integer")
        }
    }

    private func ints(_ item: Item, what: String) throws -> [Int] {
        let items: [Item]
        switch item {
        case let .tuple(id): items = tuples[id]
        case let .list(id): items = lists[id]
        default: throw invalid("\(what) is not a tuple of integers")
        }
        return try items.map { try int($0, what: what) }
    }

    // MARK: Main loop

    private mutating func run() throws -> PickleValue {
        while true {
            let opcodePosition = position
            let opcode = try u8()
            switch opcode {
            case 0x80:  // PROTO
                let version = try u8()
                guard version <= 5 else { throw unsupported("pickle protocol \(version)") }
            case 0x95:  // FRAME (a framing hint; the frame's bytes follow inline)
                _ = try u64()
            case 0x2E:  // STOP
                let result = try pop()
                // Size the expanded value first, sharing-aware and in time linear in the arenas, so a small
                // pickle that references one container many times is refused without being expanded.
                var sizes = ExpandedSizes(lists: lists.count, tuples: tuples.count, dicts: dicts.count)
                guard try expandedSize(of: result, depth: 0, sizes: &sizes) <= Limits.maxValueNodes else {
                    throw unsupported("more than \(Limits.maxValueNodes) values once shared references are expanded")
                }
                var budget = Limits.maxValueNodes
                return try value(of: result, depth: 0, budget: &budget)
            case 0x28:  // MARK
                guard marks.count < Limits.maxStack else { throw invalid("too many MARKs") }
                marks.append(stack.count)
            case 0x30:  // POP
                if stack.count > fence { stack.removeLast() } else { _ = try popToMark() }
            case 0x31:  // POP_MARK
                _ = try popToMark()
            case 0x32:  // DUP
                try push(try top())
            case 0x4E: try push(.none)  // NONE
            case 0x88: try push(.bool(true))  // NEWTRUE
            case 0x89: try push(.bool(false))  // NEWFALSE
            case 0x4A: try push(.int(Int64(Int32(bitPattern: try u32()))))  // BININT
            case 0x4B: try push(.int(Int64(try u8())))  // BININT1
            case 0x4D: try push(.int(Int64(try u16())))  // BININT2
            case 0x8A:  // LONG1
                let count = Int(try u8())
                try push(.int(try longInteger(count: count)))
            case 0x8B:  // LONG4
                let count = Int(Int32(bitPattern: try u32()))
                guard count >= 0 else { throw invalid("negative LONG4 length") }
                try push(.int(try longInteger(count: count)))
            case 0x47:  // BINFLOAT (big-endian)
                let bits = UInt64(bigEndian: try take(8).loadUnaligned(as: UInt64.self))
                try push(.float(Double(bitPattern: bits)))
            case 0x58:  // BINUNICODE
                let count = try length(UInt64(try u32()))
                try push(.string(try utf8String(count: count)))
            case 0x8C:  // SHORT_BINUNICODE
                let count = try length(UInt64(try u8()))
                try push(.string(try utf8String(count: count)))
            case 0x8D:  // BINUNICODE8
                let count = try length(try u64())
                try push(.string(try utf8String(count: count)))
            case 0x54:  // BINSTRING (Python 2 str, read as Latin-1)
                let signed = Int32(bitPattern: try u32())
                guard signed >= 0 else { throw invalid("negative BINSTRING length") }
                let count = try length(UInt64(signed))
                try push(.string(try latin1String(count: count)))
            case 0x55:  // SHORT_BINSTRING
                let count = try length(UInt64(try u8()))
                try push(.string(try latin1String(count: count)))
            case 0x42:  // BINBYTES
                let count = try length(UInt64(try u32()))
                try push(.bytes(Array(try take(count))))
            case 0x43:  // SHORT_BINBYTES
                let count = try length(UInt64(try u8()))
                try push(.bytes(Array(try take(count))))
            case 0x8E:  // BINBYTES8
                let count = try length(try u64())
                try push(.bytes(Array(try take(count))))
            case 0x29:  // EMPTY_TUPLE
                try push(newTuple([]))
            case 0x85, 0x86, 0x87:  // TUPLE1, TUPLE2, TUPLE3
                let n = Int(opcode - 0x84)
                guard stack.count - fence >= n else { throw invalid("stack underflow") }
                let items = Array(stack.suffix(n))
                stack.removeLast(n)
                try push(newTuple(items))
            case 0x74:  // TUPLE
                try push(newTuple(try popToMark()))
            case 0x5D:  // EMPTY_LIST
                lists.append([])
                try push(.list(lists.count - 1))
            case 0x6C:  // LIST
                lists.append(try popToMark())
                try push(.list(lists.count - 1))
            case 0x7D:  // EMPTY_DICT
                try push(newDict())
            case 0x64:  // DICT
                let items = try popToMark()
                let dict = newDict()
                try fill(dict: try dictID(dict, for: "DICT"), with: items)
                try push(dict)
            case 0x61:  // APPEND
                let item = try pop()
                let id = try listID(try top(), for: "APPEND")
                lists[id].append(item)
            case 0x65:  // APPENDS
                let items = try popToMark()
                let id = try listID(try top(), for: "APPENDS")
                lists[id].append(contentsOf: items)
            case 0x73:  // SETITEM
                let value = try pop()
                let key = try pop()
                try setItem(dict: try dictID(try top(), for: "SETITEM"), key: key, value: value)
            case 0x75:  // SETITEMS
                let items = try popToMark()
                try fill(dict: try dictID(try top(), for: "SETITEMS"), with: items)
            case 0x71:  // BINPUT
                try memoize(UInt32(try u8()))
            case 0x72:  // LONG_BINPUT
                try memoize(try u32())
            case 0x94:  // MEMOIZE
                guard let index = UInt32(exactly: memo.count) else { throw invalid("memo too large") }
                try memoize(index)
            case 0x68:  // BINGET
                try recall(UInt32(try u8()))
            case 0x6A:  // LONG_BINGET
                try recall(try u32())
            case 0x63:  // GLOBAL
                let module = try line()
                let name = try line()
                try push(.global(module: module, name: name))
            case 0x93:  // STACK_GLOBAL
                guard case let .string(name) = try pop(), case let .string(module) = try pop() else {
                    throw invalid("STACK_GLOBAL needs two strings")
                }
                try push(.global(module: module, name: name))
            case 0x52:  // REDUCE
                let arguments = try tupleItems(try pop(), what: "REDUCE arguments")
                let callable = try pop()
                try push(try call(callable, arguments))
            case 0x81:  // NEWOBJ
                let arguments = try tupleItems(try pop(), what: "NEWOBJ arguments")
                let cls = try pop()
                guard case let .global(module, name) = cls, module == "collections", name == "OrderedDict", arguments.isEmpty else {
                    throw unsupported("creating \(describe(cls)) objects (NEWOBJ)")
                }
                try push(newDict())
            case 0x62:  // BUILD
                _ = try pop()
                switch try top() {
                case .dict, .tensor:
                    break  // OrderedDict attributes such as `_metadata`, tensor/parameter state: not needed
                case let other:
                    throw unsupported("setting the state of \(describe(other)) (BUILD)")
                }
            case 0x51:  // BINPERSID
                try push(try persistentLoad(try pop()))
            default:
                position = opcodePosition
                throw unsupported("pickle opcode 0x\(String(opcode, radix: 16)) at byte \(opcodePosition)")
            }
        }
    }

    private mutating func fill(dict id: Int, with items: [Item]) throws {
        guard items.count % 2 == 0 else { throw invalid("odd number of items for a dict") }
        var i = 0
        while i < items.count {
            try setItem(dict: id, key: items[i], value: items[i + 1])
            i += 2
        }
    }

    private func describe(_ item: Item) -> String {
        switch item {
        case let .global(module, name): return "\(module).\(name)"
        case .none: return "None"
        case .bool: return "a bool"
        case .int: return "an int"
        case .float: return "a float"
        case .string: return "a str"
        case .bytes: return "bytes"
        case .list: return "a list"
        case .tuple: return "a tuple"
        case .dict: return "a dict"
        case .tensor: return "a tensor"
        case .storage: return "a storage"
        }
    }

    // MARK: Globals

    private static let storageTypes: [String: WeightDType] = [
        "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16, "DoubleStorage": .f64,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8,
        "ByteStorage": .u8, "BoolStorage": .bool,
    ]

    /// Resolves `('storage', storage_type, key, location, numel)`.
    private mutating func persistentLoad(_ pid: Item) throws -> Item {
        let fields = try tupleItems(pid, what: "persistent id")
        guard fields.count == 5, case let .string(kind) = fields[0], kind == "storage" else {
            throw unsupported("a persistent id other than ('storage', type, key, location, numel)")
        }
        guard case let .global(module, typeName) = fields[1] else { throw invalid("storage type is not a class") }
        guard module == "torch", let dtype = Unpickler.storageTypes[typeName] else {
            throw unsupported("storage type \(module).\(typeName)")
        }
        guard case let .string(key) = fields[2] else { throw invalid("storage key is not a string") }
        let numel = try int(fields[4], what: "storage size")
        if let cached = storages[key] {
            guard cached.dtype == dtype else { throw invalid("storage '\(key)' is used with two dtypes") }
            return .storage(cached)
        }
        let data = try loadStorage(key)
        let (needed, overflow) = numel.multipliedReportingOverflow(by: dtype.byteSize)
        guard numel >= 0, !overflow, data.count >= needed else {
            throw invalid("storage '\(key)' has \(data.count) bytes, fewer than \(numel) \(dtype.rawValue) elements")
        }
        let storage = Storage(dtype: dtype, numel: numel, bytes: data)
        storages[key] = storage
        return .storage(storage)
    }

    /// Applies a supported callable (REDUCE) to its arguments.
    private mutating func call(_ callable: Item, _ arguments: [Item]) throws -> Item {
        guard case let .global(module, name) = callable else {
            throw invalid("REDUCE on \(describe(callable)), which is not callable")
        }
        switch (module, name) {
        case ("collections", "OrderedDict"), ("builtins", "dict"), ("__builtin__", "dict"):
            let dict = newDict()
            if let first = arguments.first {
                guard arguments.count == 1 else { throw invalid("\(module).\(name) takes at most one argument") }
                let pairs: [Item]
                switch first {
                case let .list(id): pairs = lists[id]
                case let .tuple(id): pairs = tuples[id]
                default: throw unsupported("\(module).\(name) built from \(describe(first))")
                }
                let dictIndex = try dictID(dict, for: name)
                for pair in pairs {
                    let kv = try tupleItems(pair, what: "\(name) item")
                    guard kv.count == 2 else { throw invalid("\(name) item is not a pair") }
                    try setItem(dict: dictIndex, key: kv[0], value: kv[1])
                }
            }
            return dict
        case ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"):
            guard arguments.count >= 4, arguments.count <= 7 else { throw invalid("\(name) takes 4 to 7 arguments") }
            guard case let .storage(storage) = arguments[0] else { throw invalid("\(name) needs a storage") }
            return .tensor(try rebuildTensor(
                storage,
                offset: try int(arguments[1], what: "storage offset"),
                shape: try ints(arguments[2], what: "tensor size"),
                strides: try ints(arguments[3], what: "tensor stride")))
        case ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"):
            guard arguments.count >= 3, case let .tensor(tensor) = arguments[0] else {
                throw invalid("\(name) needs a tensor")
            }
            return .tensor(tensor)
        case ("torch", "Size"):
            guard arguments.count == 1, case .tuple = arguments[0] else { throw invalid("torch.Size needs one tuple") }
            return arguments[0]
        case ("torch", "device"):
            guard let first = arguments.first, case let .string(type) = first else { throw invalid("torch.device needs a string") }
            if arguments.count == 2, case let .int(index) = arguments[1] {
                return .string("\(type):\(index)")
            }
            return .string(type)
        case ("_codecs", "encode"):
            // Protocol 2 pickles bytes as _codecs.encode(text, 'latin1').
            guard arguments.count == 2, case let .string(text) = arguments[0], case let .string(encoding) = arguments[1],
                encoding == "latin1" || encoding == "latin-1"
            else { throw unsupported("_codecs.encode other than latin1") }
            var result: [UInt8] = []
            result.reserveCapacity(text.unicodeScalars.count)
            for scalar in text.unicodeScalars {
                guard scalar.value < 256 else { throw invalid("latin1 text has a character above U+00FF") }
                result.append(UInt8(scalar.value))
            }
            return .bytes(result)
        default:
            throw unsupported("the global \(module).\(name)")
        }
    }

    /// A tensor of `shape` and `strides` (in elements) starting `offset` elements into `storage`.
    ///
    /// Contiguous tensors share the storage's bytes; others are copied into row-major order.
    private mutating func rebuildTensor(_ storage: Storage, offset: Int, shape: [Int], strides: [Int]) throws -> WeightTensor {
        guard shape.count == strides.count else { throw invalid("tensor size and stride have different lengths") }
        guard shape.count <= Limits.maxDimensions else { throw unsupported("tensors with more than \(Limits.maxDimensions) dimensions") }
        guard offset >= 0, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else {
            throw invalid("negative tensor size, stride or offset")
        }
        guard let count = WeightTensor.elementCount(of: shape) else { throw invalid("tensor size \(shape) is too large") }
        let size = storage.dtype.byteSize
        if count == 0 {
            return WeightTensor(unchecked: storage.dtype, shape: shape, count: 0, storage: Data())
        }
        // The last element read: offset + Σ (size_i − 1)·stride_i, which must lie inside the storage.
        var last = offset
        var contiguous = true
        var expected = 1
        for i in shape.indices.reversed() {
            let (step, overflow1) = (shape[i] - 1).multipliedReportingOverflow(by: strides[i])
            let (sum, overflow2) = last.addingReportingOverflow(step)
            guard !overflow1, !overflow2 else { throw invalid("tensor extent overflows") }
            last = sum
            if shape[i] != 1, strides[i] != expected { contiguous = false }
            expected = expected &* shape[i]  // cannot overflow: bounded by count
        }
        guard last < storage.numel else {
            throw invalid("tensor of size \(shape) at offset \(offset) reads past its \(storage.numel)-element storage")
        }
        let base = storage.bytes.startIndex
        if contiguous {
            let start = base + offset * size
            return WeightTensor(unchecked: storage.dtype, shape: shape, count: count, storage: storage.bytes[start..<(start + count * size)])
        }
        let (total, overflow) = count.multipliedReportingOverflow(by: size)
        guard !overflow, total <= copyBudget else {
            throw unsupported("a non-contiguous tensor of \(shape) elements larger than the copy budget")
        }
        copyBudget -= total
        var copy = Data(count: total)
        copy.withUnsafeMutableBytes { destination in
            storage.bytes.withUnsafeBytes { source in
                guard let to = destination.baseAddress, let from = source.baseAddress else { return }
                // Odometer over the indices, outermost first; `source` offset tracked incrementally.
                var index = [Int](repeating: 0, count: shape.count)
                var element = offset
                for k in 0..<count {
                    (to + k * size).copyMemory(from: from + element * size, byteCount: size)
                    var d = shape.count - 1
                    while d >= 0 {
                        // Wrapping arithmetic: intermediate offsets may exceed Int when a size-1 dimension has a
                        // huge stride; the offsets actually read are exact and were bounds-checked above.
                        index[d] += 1
                        element = element &+ strides[d]
                        if index[d] < shape[d] { break }
                        element = element &- strides[d] &* shape[d]
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
        return WeightTensor(unchecked: storage.dtype, shape: shape, count: count, storage: copy)
    }

    // MARK: Result

    /// Memoized expanded sizes of the arena containers (-1: not computed yet).
    private struct ExpandedSizes {
        var lists: [Int]
        var tuples: [Int]
        var dicts: [Int]

        init(lists: Int, tuples: Int, dicts: Int) {
            self.lists = [Int](repeating: -1, count: lists)
            self.tuples = [Int](repeating: -1, count: tuples)
            self.dicts = [Int](repeating: -1, count: dicts)
        }
    }

    /// The number of values `item` expands to, saturating just above the limit.
    private func expandedSize(of item: Item, depth: Int, sizes: inout ExpandedSizes) throws -> Int {
        guard depth <= Limits.maxNesting else {
            throw unsupported("values nested deeper than \(Limits.maxNesting) levels (or a self-referencing container)")
        }
        let cap = Limits.maxValueNodes + 1
        func total(_ children: [Item]) throws -> Int {
            var sum = 1
            for child in children {
                sum = min(cap, sum + (try expandedSize(of: child, depth: depth + 1, sizes: &sizes)))
            }
            return sum
        }
        switch item {
        case let .list(id):
            if sizes.lists[id] < 0 { sizes.lists[id] = try total(lists[id]) }
            return sizes.lists[id]
        case let .tuple(id):
            if sizes.tuples[id] < 0 { sizes.tuples[id] = try total(tuples[id]) }
            return sizes.tuples[id]
        case let .dict(id):
            if sizes.dicts[id] < 0 { sizes.dicts[id] = try total(dicts[id].keys + dicts[id].values) }
            return sizes.dicts[id]
        case .none, .bool, .int, .float, .string, .bytes, .tensor, .storage, .global:
            return 1
        }
    }

    /// The public value of a machine item, expanding shared references within the node budget.
    private func value(of item: Item, depth: Int, budget: inout Int) throws -> PickleValue {
        guard depth <= Limits.maxNesting else {
            throw unsupported("values nested deeper than \(Limits.maxNesting) levels (or a self-referencing container)")
        }
        budget -= 1
        guard budget >= 0 else { throw unsupported("more than \(Limits.maxValueNodes) values") }
        switch item {
        case .none: return .none
        case let .bool(value): return .bool(value)
        case let .int(value): return .int(value)
        case let .float(value): return .float(value)
        case let .string(value): return .string(value)
        case let .bytes(value): return .bytes(value)
        case let .tensor(tensor): return .tensor(tensor)
        case let .global(module, name): return .global(module: module, name: name)
        case let .storage(storage):
            let bytes = storage.bytes.prefix(storage.numel * storage.dtype.byteSize)
            return .tensor(WeightTensor(unchecked: storage.dtype, shape: [storage.numel], count: storage.numel, storage: bytes))
        case let .list(id):
            var values: [PickleValue] = []
            values.reserveCapacity(lists[id].count)
            for element in lists[id] {
                values.append(try value(of: element, depth: depth + 1, budget: &budget))
            }
            return .list(values)
        case let .tuple(id):
            var values: [PickleValue] = []
            values.reserveCapacity(tuples[id].count)
            for element in tuples[id] {
                values.append(try value(of: element, depth: depth + 1, budget: &budget))
            }
            return .tuple(values)
        case let .dict(id):
            let dict = dicts[id]
            var entries: [(key: PickleValue, value: PickleValue)] = []
            entries.reserveCapacity(dict.keys.count)
            for i in dict.keys.indices {
                let key = try value(of: dict.keys[i], depth: depth + 1, budget: &budget)
                let entryValue = try value(of: dict.values[i], depth: depth + 1, budget: &budget)
                entries.append((key: key, value: entryValue))
            }
            return .dict(entries)
        }
    }
}
