// torch.save's format: a zip archive (stored, not compressed) holding <name>/data.pkl, a
// pickle (protocol 2) of the saved object in which tensors are
// torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) calls whose storage is
// a persistent id ('storage', torch.<Type>Storage, key, location, numel) naming the entry
// <name>/data/<key>.
#include <lepard/io/checkpoint.h>

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <sstream>

namespace lepard::io {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const fs::path& path, const std::string& what) {
  throw CheckpointError(path.string() + ": " + what);
}

uint32_t u16(const std::string& b, size_t at) {
  return static_cast<uint8_t>(b[at]) | (static_cast<uint32_t>(static_cast<uint8_t>(b[at + 1])) << 8);
}
uint32_t u32(const std::string& b, size_t at) { return u16(b, at) | (u16(b, at + 2) << 16); }

// --- zip ------------------------------------------------------------------------------
struct ZipEntry {
  size_t data_offset, size;
};

// CRC-32 of zip (IEEE 802.3), zlib's, in pieces that fit its 32-bit length.
uint32_t zip_crc32(const char* data, size_t n) {
  uLong c = ::crc32(0L, Z_NULL, 0);
  for (size_t done = 0; done < n;) {
    const auto piece = static_cast<uInt>(std::min<size_t>(n - done, 1u << 30));
    c = ::crc32(c, reinterpret_cast<const Bytef*>(data + done), piece);
    done += piece;
  }
  return static_cast<uint32_t>(c);
}

// The entries of a zip of stored entries, each checked against its CRC-32. With
// `allow_compressed`, deflated entries (LibTorch archives compress their generated code) are
// listed unchecked instead of refused: only stored entries hold tensors.
std::map<std::string, ZipEntry> read_zip(const fs::path& path, const std::string& b, bool allow_compressed = false) {
  if (b.size() < 22) fail(path, "truncated: too short for a zip archive");
  size_t eocd = std::string::npos;
  for (size_t i = b.size() - 22 + 1; i-- > 0 && b.size() - i < 22 + 65536;) {
    if (u32(b, i) == 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd == std::string::npos) fail(path, "truncated: no end-of-central-directory record (an incomplete download?)");
  const size_t count = u16(b, eocd + 10);
  size_t at = u32(b, eocd + 16);
  if (count == 0xffff || at == 0xffffffff) fail(path, "a zip64 archive (over 4 GB); not supported");
  std::map<std::string, ZipEntry> entries;
  for (size_t i = 0; i < count; ++i) {
    if (at + 46 > b.size() || u32(b, at) != 0x02014b50) fail(path, "truncated or corrupt zip central directory");
    const uint32_t method = u16(b, at + 10), size = u32(b, at + 24);
    const uint32_t name_len = u16(b, at + 28), extra_len = u16(b, at + 30), comment_len = u16(b, at + 32);
    const size_t local = u32(b, at + 42);  // size_t: local + 30 must not wrap (fuzz finding)
    const std::string name = b.substr(at + 46, name_len);
    if (method != 0 && !allow_compressed)
      fail(path, "entry " + name + " is compressed (method " + std::to_string(method) +
                     "); torch.save stores entries uncompressed");
    if (local + 30 > b.size() || u32(b, local) != 0x04034b50)
      fail(path, "truncated: entry " + name + " has no local header");
    const size_t data = local + 30 + u16(b, local + 26) + u16(b, local + 28);
    if (data + size > b.size()) {
      fail(path, "truncated: entry " + name + " needs bytes " + std::to_string(data) + ".." +
                     std::to_string(data + size) + " of a " + std::to_string(b.size()) + "-byte file");
    }
    const uint32_t stored_crc = u32(b, at + 16);
    const uint32_t actual_crc = method == 0 ? zip_crc32(b.data() + data, size) : stored_crc;
    if (stored_crc != actual_crc) {
      char hex[64];
      std::snprintf(hex, sizeof hex, "CRC-32 %08x, stored %08x", actual_crc, stored_crc);
      fail(path, "entry " + name + " is corrupt (" + hex + "): the file was damaged after it was written");
    }
    entries[name] = {data, size};
    at += 46 + name_len + extra_len + comment_len;
  }
  return entries;
}

// --- pickle ---------------------------------------------------------------------------
struct Obj;
using ObjP = std::shared_ptr<Obj>;
struct Obj {
  enum Kind { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, Tensor, Opaque, Mark } kind = None;
  int64_t i = 0;
  double f = 0;
  std::string s;                            // Str; Global "module.name"
  std::vector<ObjP> items;                  // Tuple, List
  std::vector<std::pair<ObjP, ObjP>> dict;  // Dict
  at::Tensor tensor;
};
ObjP make(Obj::Kind k) {
  auto o = std::make_shared<Obj>();
  o->kind = k;
  return o;
}

at::ScalarType storage_dtype(const std::string& global, const fs::path& path) {
  static const std::map<std::string, at::ScalarType> types = {
      {"torch.FloatStorage", at::kFloat},       {"torch.DoubleStorage", at::kDouble}, {"torch.HalfStorage", at::kHalf},
      {"torch.BFloat16Storage", at::kBFloat16}, {"torch.LongStorage", at::kLong},     {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort},       {"torch.CharStorage", at::kChar},     {"torch.ByteStorage", at::kByte},
      {"torch.BoolStorage", at::kBool}};
  const auto it = types.find(global);
  if (it == types.end()) fail(path, "unsupported storage type " + global);
  return it->second;
}

class Unpickler {
 public:
  Unpickler(const fs::path& path, const std::string& file, const std::map<std::string, ZipEntry>& zip,
            const std::string& prefix, const std::string& pkl)
      : path_(path), file_(file), zip_(zip), prefix_(prefix), p_(pkl) {}

  ObjP run() {
    while (true) {
      if (pos_ >= p_.size()) fail(path_, "data.pkl ends without a STOP opcode (truncated?)");
      const size_t op_at = pos_;
      const uint8_t op = static_cast<uint8_t>(p_[pos_++]);
      switch (op) {
        case 0x80:
          ++pos_;
          break;  // PROTO
        case 0x95:
          pos_ += 8;
          break;  // FRAME
        case '(':
          push(make(Obj::Mark));
          break;  // MARK
        case '.':
          return pop();  // STOP
        case 'N':
          push(make(Obj::None));
          break;
        case 0x88:
        case 0x89: {
          auto o = make(Obj::Bool);
          o->i = op == 0x88;
          push(o);
          break;
        }
        case 'K':
          push(integer(read_uint(1)));
          break;  // BININT1
        case 'M':
          push(integer(read_uint(2)));
          break;  // BININT2
        case 'J':
          push(integer(static_cast<int32_t>(read_uint(4))));
          break;      // BININT
        case 0x8a: {  // LONG1
          const size_t n = read_uint(1);
          int64_t v = 0;
          for (size_t k = 0; k < n && k < 8; ++k)
            v |= static_cast<int64_t>(static_cast<uint8_t>(p_[pos_ + k])) << (8 * k);
          if (n > 0 && n < 8 && (static_cast<uint8_t>(p_[pos_ + n - 1]) & 0x80)) v -= int64_t(1) << (8 * n);
          pos_ += n;
          push(integer(v));
          break;
        }
        case 'G': {  // BINFLOAT (big-endian double)
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | static_cast<uint8_t>(p_[pos_ + k]);
          pos_ += 8;
          auto o = make(Obj::Float);
          std::memcpy(&o->f, &bits, 8);
          push(o);
          break;
        }
        case 'X':
          push(string(read_uint(4)));
          break;  // BINUNICODE
        case 0x8c:
          push(string(read_uint(1)));
          break;  // SHORT_BINUNICODE
        case 'T':
          push(string(read_uint(4)));
          break;  // BINSTRING
        case 'U':
          push(string(read_uint(1)));
          break;  // SHORT_BINSTRING
        case 'B':
          push(string(read_uint(4)));
          break;  // BINBYTES
        case 'C':
          push(string(read_uint(1)));
          break;     // SHORT_BINBYTES
        case 'c': {  // GLOBAL "module\nname\n"
          const std::string module = line(), name = line();
          auto o = make(Obj::Global);
          o->s = module + "." + name;
          push(o);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          const auto name = pop(), module = pop();
          auto o = make(Obj::Global);
          o->s = module->s + "." + name->s;
          push(o);
          break;
        }
        case 'q':
          memo_[read_uint(1)] = top();
          break;  // BINPUT
        case 'r':
          memo_[read_uint(4)] = top();
          break;  // LONG_BINPUT
        case 0x94:
          memo_[memo_.size()] = top();
          break;  // MEMOIZE
        case 'h':
          push(memo(read_uint(1), op_at));
          break;  // BINGET
        case 'j':
          push(memo(read_uint(4), op_at));
          break;  // LONG_BINGET
        case '0':
          pop();
          break;  // POP
        case '2':
          push(top());
          break;  // DUP
        case '}':
          push(make(Obj::Dict));
          break;
        case ']':
          push(make(Obj::List));
          break;
        case ')':
          push(make(Obj::Tuple));
          break;
        case 't': {
          auto o = make(Obj::Tuple);
          o->items = pop_to_mark();
          push(o);
          break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          auto o = make(Obj::Tuple);
          o->items.resize(op - 0x84);
          for (size_t k = o->items.size(); k-- > 0;) o->items[k] = pop();
          push(o);
          break;
        }
        case 'a': {
          auto v = pop();
          top()->items.push_back(v);
          break;
        }  // APPEND
        case 'e': {
          auto v = pop_to_mark();
          auto l = top();
          l->items.insert(l->items.end(), v.begin(), v.end());
          break;
        }
        case 's': {
          auto v = pop(), k = pop();
          top()->dict.emplace_back(k, v);
          break;
        }            // SETITEM
        case 'u': {  // SETITEMS
          auto v = pop_to_mark();
          auto d = top();
          for (size_t k = 0; k + 1 < v.size(); k += 2) d->dict.emplace_back(v[k], v[k + 1]);
          break;
        }
        case 'b':
          pop();
          break;  // BUILD: object state is not needed
        case 'R':
        case 0x81: {  // REDUCE, NEWOBJ
          auto args = pop(), callable = pop();
          push(call(callable, args, op_at));
          break;
        }
        case 'Q':
          push(persistent(pop(), op_at));
          break;  // BINPERSID
        default: {
          std::ostringstream s;
          s << "data.pkl: unsupported pickle opcode 0x" << std::hex << int(op) << std::dec << " at offset " << op_at
            << "; re-save the file with torch.save from PyTorch >= 1.6";
          fail(path_, s.str());
        }
      }
    }
  }

 private:
  size_t read_uint(int n) {
    if (pos_ + n > p_.size()) fail(path_, "data.pkl is truncated");
    size_t v = 0;
    for (int k = 0; k < n; ++k) v |= static_cast<size_t>(static_cast<uint8_t>(p_[pos_ + k])) << (8 * k);
    pos_ += n;
    return v;
  }
  std::string line() {
    const size_t end = p_.find('\n', pos_);
    if (end == std::string::npos) fail(path_, "data.pkl is truncated");
    std::string s = p_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }
  ObjP integer(int64_t v) {
    auto o = make(Obj::Int);
    o->i = v;
    return o;
  }
  ObjP string(size_t n) {
    if (pos_ + n > p_.size()) fail(path_, "data.pkl is truncated");
    auto o = make(Obj::Str);
    o->s = p_.substr(pos_, n);
    pos_ += n;
    return o;
  }
  void push(ObjP o) { stack_.push_back(std::move(o)); }
  ObjP pop() {
    if (stack_.empty()) fail(path_, "data.pkl: pickle stack underflow (corrupt file)");
    auto o = stack_.back();
    stack_.pop_back();
    return o;
  }
  ObjP top() {
    if (stack_.empty()) fail(path_, "data.pkl: pickle stack underflow (corrupt file)");
    return stack_.back();
  }
  std::vector<ObjP> pop_to_mark() {
    std::vector<ObjP> v;
    while (true) {
      auto o = pop();
      if (o->kind == Obj::Mark) break;
      v.push_back(o);
    }
    return {v.rbegin(), v.rend()};
  }
  ObjP memo(size_t k, size_t at) {
    const auto it = memo_.find(k);
    if (it == memo_.end())
      fail(path_, "data.pkl: memo " + std::to_string(k) + " read before written at offset " + std::to_string(at));
    return it->second;
  }
  std::vector<int64_t> ints(const ObjP& t) {
    std::vector<int64_t> v;
    for (const auto& o : t->items) v.push_back(o->i);
    return v;
  }

  ObjP persistent(const ObjP& pid, size_t at) {
    if (pid->kind != Obj::Tuple || pid->items.size() < 5 || pid->items[0]->s != "storage") {
      fail(path_, "data.pkl: unexpected persistent id at offset " + std::to_string(at));
    }
    const auto dtype = storage_dtype(pid->items[1]->s, path_);
    const std::string key = pid->items[2]->s;
    const int64_t numel = pid->items[4]->i;
    const auto it = zip_.find(prefix_ + "data/" + key);
    if (it == zip_.end()) fail(path_, "storage " + key + " (entry " + prefix_ + "data/" + key + ") is missing");
    auto storage = at::empty({numel}, at::TensorOptions().dtype(dtype));
    const size_t bytes = static_cast<size_t>(numel) * storage.element_size();
    if (it->second.size < bytes) {
      fail(path_, "storage " + key + " holds " + std::to_string(it->second.size) + " bytes, " + std::to_string(bytes) +
                      " expected");
    }
    std::memcpy(storage.data_ptr(), file_.data() + it->second.data_offset, bytes);
    auto o = make(Obj::Tensor);
    o->tensor = storage;
    return o;
  }

  ObjP call(const ObjP& callable, const ObjP& args, size_t at) {
    const std::string fn = callable->kind == Obj::Global ? callable->s : "";
    if (fn == "collections.OrderedDict" || fn == "builtins.dict") return make(Obj::Dict);
    if (fn == "torch._utils._rebuild_tensor_v2" || fn == "torch._utils._rebuild_tensor") {
      const auto& a = args->items;
      if (a.size() < 4 || a[0]->kind != Obj::Tensor)
        fail(path_, "data.pkl: malformed tensor at offset " + std::to_string(at));
      auto o = make(Obj::Tensor);
      o->tensor = a[0]->tensor.as_strided(ints(a[2]), ints(a[3]), a[1]->i).clone();
      return o;
    }
    if (fn == "torch._utils._rebuild_parameter" || fn == "torch._utils._rebuild_parameter_with_state") {
      if (args->items.empty() || args->items[0]->kind != Obj::Tensor) fail(path_, "data.pkl: malformed Parameter");
      return args->items[0];
    }
    return make(Obj::Opaque);  // argparse.Namespace, optimiser classes, ...: not tensors
  }

  const fs::path& path_;
  const std::string& file_;
  const std::map<std::string, ZipEntry>& zip_;
  const std::string prefix_;
  const std::string& p_;
  size_t pos_ = 0;
  std::vector<ObjP> stack_;
  std::map<size_t, ObjP> memo_;
};

void flatten(const ObjP& o, const std::string& prefix, StateDict& out) {
  if (o->kind == Obj::Tensor) {
    out.emplace_back(prefix, o->tensor);
  } else if (o->kind == Obj::Dict) {
    for (const auto& [k, v] : o->dict) {
      if (k->kind != Obj::Str) continue;
      flatten(v, prefix.empty() ? k->s : prefix + "." + k->s, out);
    }
  }
}

std::string read_all(const fs::path& path) {
  if (fs::is_directory(path)) fail(path, "is a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

void verify_zip(const fs::path& path) {
  const auto bytes = read_all(path);
  if (bytes.size() < 4 || bytes.compare(0, 4, "PK\x03\x04") != 0)
    fail(path, "not a zip archive (the file does not start with PK\\x03\\x04)");
  read_zip(path, bytes, true);
}

StateDict load_torch_checkpoint(const fs::path& path) {
  const std::string bytes = read_all(path);
  if (bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x80 && static_cast<uint8_t>(bytes[1]) == 0x02) {
    fail(path,
         "a legacy (non-zip) torch.save file, from PyTorch < 1.6 or _use_new_zipfile_serialization=False; "
         "convert it with: python3 -c \"import torch; torch.save(torch.load('" +
             path.string() + "', map_location='cpu'), 'converted.pth')\"");
  }
  if (bytes.size() < 4 || bytes.compare(0, 4, "PK\x03\x04") != 0) {
    fail(path, "not a torch.save zip archive (the file does not start with PK\\x03\\x04)");
  }
  const auto zip = read_zip(path, bytes);
  std::string pkl_name;
  for (const auto& [name, entry] : zip) {
    if (name.size() >= 8 && name.compare(name.size() - 8, 8, "data.pkl") == 0) pkl_name = name;
  }
  if (pkl_name.empty()) fail(path, "no data.pkl in the archive: not a torch.save file");
  const std::string prefix = pkl_name.substr(0, pkl_name.size() - 8);
  const auto& e = zip.at(pkl_name);
  const std::string pkl = bytes.substr(e.data_offset, e.size);
  Unpickler u(path, bytes, zip, prefix, pkl);
  StateDict out;
  flatten(u.run(), "", out);
  if (out.empty()) fail(path, "holds no tensors");
  return out;
}

}  // namespace lepard::io
