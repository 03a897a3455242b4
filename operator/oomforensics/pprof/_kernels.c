/* The decoder's inner loops in C: optional, numpy does the same work when this is not built.

Each function does what one step of vectorised.py, model.py or stacks.py does with numpy, on
the same inputs, and gives the same arrays (the function table stays int64 where numpy adds a
deep stack in Python ints; tests/unit/pprof/test_kernels.py compares them on every profile of
the shared corpus and on generated and corrupt ones). Like wire.py, it accepts
only the encodings it can prove upb decodes the same way: one-byte tags of the expected wire
type, lengths of at most 4 bytes inside their message, varints of at most 10 bytes. For
anything else it returns None and the caller takes the numpy path, which decides (and gives
upb's own error for data that is not valid).

Arrays come in through the buffer protocol and go out as bytearrays (numpy views them with
np.frombuffer), so the module needs neither numpy's headers nor its C API.
*/
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- growable output buffers ---- */

typedef struct {
    char *data;
    size_t size;
    size_t capacity;
} Buffer;

static int buffer_reserve(Buffer *b, size_t extra) {
    if (b->size + extra <= b->capacity) {
        return 0;
    }
    size_t capacity = b->capacity ? b->capacity : 4096;
    while (capacity < b->size + extra) {
        capacity *= 2;
    }
    char *data = realloc(b->data, capacity);
    if (data == NULL) {
        return -1;
    }
    b->data = data;
    b->capacity = capacity;
    return 0;
}

static int put(Buffer *b, const void *item, size_t size) {
    if (buffer_reserve(b, size) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(b->data + b->size, item, size);
    b->size += size;
    return 0;
}

static PyObject *as_bytearray(Buffer *b) {
    PyObject *out = PyByteArray_FromStringAndSize(b->data ? b->data : "", (Py_ssize_t)b->size);
    free(b->data);
    b->data = NULL;
    b->size = b->capacity = 0;
    return out;
}

static PyObject *zeroed_bytearray(size_t size) {
    PyObject *out = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (out != NULL && size) {
        memset(PyByteArray_AS_STRING(out), 0, size);
    }
    return out;
}

/* ---- wire format ---- */

#define VARINT 0
#define LENGTH_DELIMITED 2

/* Reads a varint of at most 10 bytes ending before `end` (bits past the 64th are dropped, as
   upb and wire.py drop them). Returns its length in bytes, 0 if it is longer or truncated. */
static inline int read_varint(const uint8_t *p, const uint8_t *end, uint64_t *value) {
    uint64_t v = 0;
    for (int k = 0; k < 10 && p + k < end; k++) {
        uint8_t byte = p[k];
        v |= (uint64_t)(byte & 0x7F) << (7 * k);
        if (byte < 0x80) {
            *value = v;
            return k + 1;
        }
    }
    return 0;
}

/* read_varint without a branch per byte, when 8 bytes can be read: the varint ends at the
   first byte below 0x80, and its 7-bit groups are packed by three mask-and-shift steps. */
static inline int read_varint_fast(const uint8_t *p, const uint8_t *end, uint64_t *value) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, sizeof x);
        uint64_t stops = ~x & 0x8080808080808080ULL;
        if (stops) {
            int bit = __builtin_ctzll(stops);  /* 7, 15, ...: the last byte's top bit */
            x &= bit == 63 ? ~0ULL : (2ULL << bit) - 1;
            x &= 0x7F7F7F7F7F7F7F7FULL;
            x = ((x & 0x7F007F007F007F00ULL) >> 1) | (x & 0x007F007F007F007FULL);
            x = ((x & 0x3FFF00003FFF0000ULL) >> 2) | (x & 0x00003FFF00003FFFULL);
            x = ((x & 0x0FFFFFFF00000000ULL) >> 4) | (x & 0x000000000FFFFFFFULL);
            *value = x;
            return (bit >> 3) + 1;
        }
    }
#endif
    return read_varint(p, end, value);
}

/* One field of a message: its number, wire type, and its value (a varint) or its content
   (`start` .. `stop`). Returns the position after it, or NULL for an encoding wire.py would
   not accept: a tag of more than one byte, or not in `allowed` (a bitmask of tags), or a
   value missing or running past `end`, or a length of more than 4 bytes. */
static const uint8_t *read_field(const uint8_t *p, const uint8_t *end, uint64_t allowed,
                                 int *number, int *wire, uint64_t *value,
                                 const uint8_t **start, const uint8_t **stop) {
    uint8_t tag = *p;
    if (tag >= 64 || !((allowed >> tag) & 1)) {
        return NULL;
    }
    *number = tag >> 3;
    *wire = tag & 7;
    p++;
    int length = read_varint_fast(p, end, value);
    if (length == 0) {
        return NULL;
    }
    p += length;
    if (*wire == VARINT) {
        return p;
    }
    if (length > 4 || *value > (uint64_t)(end - p)) {
        return NULL;
    }
    *start = p;
    *stop = p + *value;
    return *stop;
}

#define TAG(number, wire) (1ULL << (((number) << 3) | (wire)))

/* Whether `p` .. `end` is a message of varint fields among `allowed`. */
static int varint_fields(const uint8_t *p, const uint8_t *end, uint64_t allowed) {
    while (p < end) {
        int number, wire;
        uint64_t value;
        const uint8_t *start, *stop;
        p = read_field(p, end, allowed, &number, &wire, &value, &start, &stop);
        if (p == NULL) {
            return 0;
        }
    }
    return 1;
}

/* ---- arrays in ---- */

/* A read-only, C-contiguous view of `object` with items of `itemsize` bytes. */
static int view_of(PyObject *object, Py_buffer *view, Py_ssize_t itemsize, const char *what) {
    if (PyObject_GetBuffer(object, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        return -1;
    }
    if (view->itemsize != itemsize || view->ndim > 1) {
        PyErr_Format(PyExc_TypeError, "%s: expected a 1-D array of %zd-byte items", what,
                     itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* Views of all `count` objects (views[i] of objects[i], items of itemsizes[i] bytes), or of
   none, with the error set. */
static int views_of(int count, Py_buffer **views, PyObject **objects,
                    const Py_ssize_t *itemsizes, const char **names) {
    for (int i = 0; i < count; i++) {
        if (view_of(objects[i], views[i], itemsizes[i], names[i]) < 0) {
            while (i-- > 0) {
                PyBuffer_Release(views[i]);
            }
            return -1;
        }
    }
    return 0;
}

static void release_views(int count, Py_buffer **views) {
    for (int i = 0; i < count; i++) {
        PyBuffer_Release(views[i]);
    }
}

/* ---- encoded messages in ---- */

/* A profile's samples or locations: a list of bytes (upb's view gives them so), or spans of
   one buffer, (data, bounds) with bounds the (start, stop) pairs of the messages in data (intp),
   as split_profile gives them without a bytes object each. */
typedef struct {
    PyObject *list;  /* the list, or NULL for spans */
    Py_buffer data, bounds;
    const Py_ssize_t *spans;
    Py_ssize_t count;
    Py_ssize_t total;  /* bytes in all messages */
    Py_ssize_t longest;
} Messages;

/* `object` as Messages (release with messages_release), or -1 with TypeError or ValueError
   set for anything else: an item that is not bytes, a span outside the data. */
static int messages_of(PyObject *object, Messages *m) {
    memset(m, 0, sizeof *m);
    if (PyList_Check(object)) {
        m->list = object;
        m->count = PyList_GET_SIZE(object);
        for (Py_ssize_t i = 0; i < m->count; i++) {
            PyObject *item = PyList_GET_ITEM(object, i);
            if (!PyBytes_Check(item)) {
                PyErr_SetString(PyExc_TypeError, "messages must be bytes");
                return -1;
            }
            Py_ssize_t size = PyBytes_GET_SIZE(item);
            m->total += size;
            m->longest = size > m->longest ? size : m->longest;
        }
        return 0;
    }
    PyObject *data_object, *bounds_object;
    if (!PyTuple_Check(object) || !PyArg_ParseTuple(object, "OO", &data_object, &bounds_object)) {
        PyErr_SetString(PyExc_TypeError, "messages: a list of bytes or (data, bounds)");
        return -1;
    }
    if (PyObject_GetBuffer(data_object, &m->data, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (PyObject_GetBuffer(bounds_object, &m->bounds, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&m->data);
        return -1;
    }
    if (m->bounds.len % (Py_ssize_t)(2 * sizeof(Py_ssize_t)) != 0 ||
        (uintptr_t)m->bounds.buf % sizeof(Py_ssize_t) != 0) {
        PyErr_SetString(PyExc_TypeError, "bounds: aligned (start, stop) pairs of intp expected");
        PyBuffer_Release(&m->data);
        PyBuffer_Release(&m->bounds);
        return -1;
    }
    m->spans = m->bounds.buf;
    m->count = m->bounds.len / (Py_ssize_t)(2 * sizeof(Py_ssize_t));
    for (Py_ssize_t i = 0; i < m->count; i++) {
        Py_ssize_t start = m->spans[2 * i], stop = m->spans[2 * i + 1];
        if (start < 0 || stop < start || stop > m->data.len) {
            PyErr_SetString(PyExc_ValueError, "bounds: a message outside the data");
            PyBuffer_Release(&m->data);
            PyBuffer_Release(&m->bounds);
            return -1;
        }
        m->total += stop - start;
        m->longest = stop - start > m->longest ? stop - start : m->longest;
    }
    return 0;
}

static void messages_release(Messages *m) {
    if (m->list == NULL) {
        PyBuffer_Release(&m->data);
        PyBuffer_Release(&m->bounds);
    }
}

/* Message i: `p` .. `end`. */
static inline void message_at(const Messages *m, Py_ssize_t i, const uint8_t **p,
                              const uint8_t **end) {
    if (m->list != NULL) {
        PyObject *item = PyList_GET_ITEM(m->list, i);
        *p = (const uint8_t *)PyBytes_AS_STRING(item);
        *end = *p + PyBytes_GET_SIZE(item);
    } else {
        *p = (const uint8_t *)m->data.buf + m->spans[2 * i];
        *end = (const uint8_t *)m->data.buf + m->spans[2 * i + 1];
    }
}

/* What a kernel returns: `out` when status is 0; else nothing of it, and the error (status
   -1; memory, when none is set) or None (1: the input is for numpy or upb to decide). */
static PyObject *outcome(int status, PyObject *out) {
    if (status == 0) {
        return out;
    }
    Py_XDECREF(out);
    if (status < 0) {
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

/* ---- samples ---- */

static const uint64_t SAMPLE_FIELDS = TAG(1, VARINT) | TAG(1, LENGTH_DELIMITED) |
                                      TAG(2, VARINT) | TAG(2, LENGTH_DELIMITED) |
                                      TAG(3, LENGTH_DELIMITED);
static const uint64_t LABEL_FIELDS = TAG(1, VARINT) | TAG(2, VARINT) | TAG(3, VARINT) |
                                     TAG(4, VARINT);

/* Where one sample's ids and values go: ids into a buffer with room for one per byte of the
   samples (a varint takes at least one), values up to `width` of them. */
typedef struct {
    int wide;  /* ids as uint64; else uint32, until one does not fit */
    uint32_t *ids32;
    uint64_t *ids64;
    Py_ssize_t id_count;
    uint64_t *values;
    Py_ssize_t value_count;  /* of this sample */
    Py_ssize_t width;
} SampleOut;

/* The ids of a packed field, appended; in locals, as stores through `out` could otherwise
   alias its counters. 1 when a varint runs past the field, 2 when an id needs 64 bits. */
static int packed_ids(const uint8_t *p, const uint8_t *end, SampleOut *out) {
    Py_ssize_t count = out->id_count;
    int status = 0;
    if (out->wide) {
        /* A byte at a time without a branch: the value so far is stored at every byte and
           kept (the count moves on) at the last one, below 0x80. Room: the buffer holds one
           id per byte of the sample, and no store runs past the ids already complete. */
        uint64_t *ids = out->ids64;
        uint64_t value = 0;
        unsigned shift = 0, too_long = 0;
        for (; p < end; p++) {
            uint64_t byte = *p;
            too_long |= shift > 63;
            value |= (byte & 0x7F) << (shift & 63);
            ids[count] = value;
            uint64_t more = byte >> 7;
            count += (Py_ssize_t)(more ^ 1);
            value &= 0 - more;
            shift = (shift + 7) & (0U - (unsigned)more);
        }
        if (too_long || shift != 0) {
            status = 1;  /* a varint longer than 10 bytes, or one cut off by the field's end */
        }
    } else {
        uint32_t *ids = out->ids32;
        while (p < end) {
            uint64_t value;
            int length = read_varint_fast(p, end, &value);
            if (length == 0 || value > UINT32_MAX) {
                status = length == 0 ? 1 : 2;
                break;
            }
            p += length;
            ids[count++] = (uint32_t)value;
        }
    }
    out->id_count = count;
    return status;
}

/* Appends one value of a repeated varint field (a packed one: all of them) to ids or values;
   1 when a sample has more values than `width`, or a packed varint runs past its field, 2
   when an id needs 64 bits (decode again with room for them). */
static int repeated_value(int number, int wire, uint64_t value, const uint8_t *p,
                          const uint8_t *end, SampleOut *out) {
    if (number == 1 && wire == LENGTH_DELIMITED) {
        return packed_ids(p, end, out);
    }
    for (;;) {
        if (wire == LENGTH_DELIMITED) {
            if (p == end) {
                return 0;
            }
            int length = read_varint_fast(p, end, &value);
            if (length == 0) {
                return 1;
            }
            p += length;
        }
        if (number == 1) {
            if (out->wide) {
                out->ids64[out->id_count++] = value;
            } else if (value <= UINT32_MAX) {
                out->ids32[out->id_count++] = (uint32_t)value;
            } else {
                return 2;
            }
        } else {
            if (out->value_count == out->width) {
                return 1;
            }
            out->values[out->value_count++] = value;
        }
        if (wire == VARINT) {
            return 0;
        }
    }
}

static int decode_sample(const uint8_t *p, const uint8_t *end, SampleOut *out) {
    out->value_count = 0;
    while (p < end) {
        int number, wire;
        uint64_t value;
        const uint8_t *start = NULL, *stop = NULL;
        p = read_field(p, end, SAMPLE_FIELDS, &number, &wire, &value, &start, &stop);
        if (p == NULL) {
            return 1;
        }
        if (number == 3) {
            if (!varint_fields(start, stop, LABEL_FIELDS)) {
                return 1;  /* a label: validated, not kept */
            }
        } else {
            int status = repeated_value(number, wire, value, start, stop, out);
            if (status != 0) {
                return status;
            }
        }
    }
    return out->value_count == out->width ? 0 : 1;
}

/* Whether `count` samples of `width` values each can be in `total` bytes (a value takes at
   least one): else the profile is not valid, and no room is made for the values. */
static int values_fit(Py_ssize_t count, Py_ssize_t width, size_t total) {
    return width == 0 || (size_t)count <= total / (size_t)width;
}

PyDoc_STRVAR(decode_samples_doc,
"decode_samples(messages, width) -> (ids, wide, offsets, values) or None\n\n"
"Of encoded Sample messages (a list of bytes, or (data, bounds) as split_profile gives them):\n"
"the location ids of every sample (uint64 if `wide`, else uint32), where each sample's ids\n"
"start (intp, one past the last too) and their values (uint64, `width` per sample), as\n"
"bytearrays; None when an encoding is not one this decoder takes, or a sample has other\n"
"than `width` values.");

static PyObject *decode_samples(PyObject *self, PyObject *args) {
    PyObject *messages_object;
    Py_ssize_t width;
    Messages messages;
    if (!PyArg_ParseTuple(args, "On", &messages_object, &width)) {
        return NULL;
    }
    if (width < 0) {
        PyErr_SetString(PyExc_ValueError, "width must not be negative");
        return NULL;
    }
    if (messages_of(messages_object, &messages) < 0) {
        return NULL;
    }
    Py_ssize_t count = messages.count;
    size_t total = (size_t)messages.total;
    if (!values_fit(count, width, total)) {
        messages_release(&messages);
        Py_RETURN_NONE;
    }
    PyObject *values = PyByteArray_FromStringAndSize(NULL, count * width * 8);
    PyObject *offsets = PyByteArray_FromStringAndSize(NULL, (count + 1) * sizeof(Py_ssize_t));
    PyObject *ids = NULL;
    SampleOut out = {0};
    out.width = width;
    int status = (values && offsets) ? 2 : -1;
    /* Ids go into room for one per byte of the samples (a varint takes at least one), trimmed
       after; only pages written to are ever allocated. 32-bit ids unless one is larger. */
    for (int wide = 0; wide < 2 && status == 2; wide++) {
        Py_XDECREF(ids);
        ids = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)(total * (wide ? 8 : 4)));
        if (ids == NULL) {
            status = -1;
            break;
        }
        out.wide = wide;
        out.ids32 = (uint32_t *)PyByteArray_AS_STRING(ids);
        out.ids64 = (uint64_t *)PyByteArray_AS_STRING(ids);
        out.id_count = 0;
        uint64_t *all_values = (uint64_t *)PyByteArray_AS_STRING(values);
        Py_ssize_t *starts = (Py_ssize_t *)PyByteArray_AS_STRING(offsets);
        starts[0] = 0;
        status = 0;
        for (Py_ssize_t i = 0; i < count && status == 0; i++) {
            const uint8_t *p, *end;
            message_at(&messages, i, &p, &end);
            out.values = all_values + i * width;
            status = decode_sample(p, end, &out);
            starts[i + 1] = out.id_count;
        }
    }
    messages_release(&messages);
    if (status == 0 && PyByteArray_Resize(ids, out.id_count * (out.wide ? 8 : 4)) < 0) {
        status = -1;
    }
    if (status == 0) {
        PyObject *decoded = Py_BuildValue("(NONN)", ids, out.wide ? Py_True : Py_False, offsets,
                                          values);
        return outcome(decoded ? 0 : -1, decoded);
    }
    Py_XDECREF(ids);
    Py_XDECREF(values);
    Py_XDECREF(offsets);
    return outcome(status, NULL);
}

#define NO_LOCATION (-1)
#define INLINED (-2)

PyDoc_STRVAR(decode_sample_frames_doc,
"decode_sample_frames(messages, width, table, frame_offsets, nodes) -> (offsets, frames,\n"
"values) or None\n\n"
"decode_samples, with each location id made its location's frames as it is read: location\n"
"j = table[id] (int32, -1 where none) has the frames nodes[frame_offsets[j] ..\n"
"frame_offsets[j + 1] - 1] (int32). Returns intp offsets, int32 frames and uint64 values as\n"
"bytearrays; None where decode_samples would, or when an id names no location.");

static PyObject *decode_sample_frames(PyObject *self, PyObject *args) {
    PyObject *messages_object, *table_object, *frame_offsets_object, *nodes_object;
    Py_ssize_t width;
    Messages messages;
    if (!PyArg_ParseTuple(args, "OnOOO", &messages_object, &width, &table_object,
                          &frame_offsets_object, &nodes_object)) {
        return NULL;
    }
    if (width < 0) {
        PyErr_SetString(PyExc_ValueError, "width must not be negative");
        return NULL;
    }
    if (messages_of(messages_object, &messages) < 0) {
        return NULL;
    }
    Py_ssize_t count = messages.count, longest = messages.longest, total = messages.total;
    if (!values_fit(count, width, (size_t)total)) {
        messages_release(&messages);
        Py_RETURN_NONE;
    }
    Py_buffer table, frame_offsets, nodes;
    Py_buffer *views[] = {&table, &frame_offsets, &nodes};
    if (views_of(3, views, (PyObject *[]){table_object, frame_offsets_object, nodes_object},
                 (const Py_ssize_t[]){4, sizeof(Py_ssize_t), 4},
                 (const char *[]){"table", "frame_offsets", "nodes"}) < 0) {
        messages_release(&messages);
        return NULL;
    }
    Py_ssize_t table_size = table.len / 4;
    Py_ssize_t location_count = frame_offsets.len / (Py_ssize_t)sizeof(Py_ssize_t) - 1;
    const int32_t *positions = table.buf;
    const Py_ssize_t *location_starts = frame_offsets.buf;
    const int32_t *location_nodes = nodes.buf;
    Py_ssize_t most_frames = 0;  /* of one location */
    int status = location_count < 0 || location_starts[location_count] > nodes.len / 4;
    for (Py_ssize_t j = 0; j < location_count && status == 0; j++) {
        Py_ssize_t size = location_starts[j + 1] - location_starts[j];
        if (size < 0 || location_starts[j] < 0) {
            status = 1;
        } else if (size > most_frames) {
            most_frames = size;
        }
    }
    /* By id, in one load: the node of a location with one frame; NO_LOCATION; or INLINED - j
       for location j of several frames. */
    int32_t *direct = status ? NULL : malloc((size_t)(table_size ? table_size : 1) * 4);
    if (status == 0 && direct == NULL) {
        status = -1;
    }
    for (Py_ssize_t id = 0; id < table_size && status == 0; id++) {
        int32_t at = positions[id];
        if (at < 0 || at >= location_count) {
            direct[id] = NO_LOCATION;
        } else if (location_starts[at + 1] - location_starts[at] == 1) {
            direct[id] = location_nodes[location_starts[at]];
        } else {
            direct[id] = INLINED - at;
        }
    }
    /* One sample's ids at a time (at most one per byte), made frames right after. */
    SampleOut out = {0};
    out.width = width;
    out.wide = 1;
    out.ids64 = malloc((size_t)(longest ? longest : 1) * sizeof(uint64_t));
    PyObject *values = PyByteArray_FromStringAndSize(NULL, count * width * 8);
    PyObject *offsets = PyByteArray_FromStringAndSize(NULL, (count + 1) * sizeof(Py_ssize_t));
    /* Frames: as many as the samples have bytes to begin with (a location id takes two or
       three, most locations have one frame), grown as needed; only pages written to are
       allocated, and the rest is given back after. */
    Py_ssize_t capacity = total + 1024, written = 0;
    PyObject *frames = PyByteArray_FromStringAndSize(NULL, capacity * 4);
    if (status == 0 && !(out.ids64 && values && offsets && frames)) {
        status = -1;
    }
    if (status == 0) {
        uint64_t *all_values = (uint64_t *)PyByteArray_AS_STRING(values);
        Py_ssize_t *starts = (Py_ssize_t *)PyByteArray_AS_STRING(offsets);
        starts[0] = 0;
        for (Py_ssize_t i = 0; i < count && status == 0; i++) {
            const uint8_t *p, *end;
            message_at(&messages, i, &p, &end);
            out.values = all_values + i * width;
            out.id_count = 0;
            status = decode_sample(p, end, &out);
            if (status != 0) {
                break;
            }
            Py_ssize_t need = written + out.id_count * most_frames;
            if (need > capacity) {
                capacity = need > 2 * capacity ? need : 2 * capacity;
                if (PyByteArray_Resize(frames, capacity * 4) < 0) {
                    status = -1;
                    break;
                }
            }
            int32_t *frame = (int32_t *)PyByteArray_AS_STRING(frames);
            for (Py_ssize_t k = 0; k < out.id_count; k++) {
                uint64_t id = out.ids64[k];
                int32_t node = id < (uint64_t)table_size ? direct[id] : NO_LOCATION;
                if (node >= 0) {
                    frame[written++] = node;
                    continue;
                }
                if (node == NO_LOCATION) {
                    status = 1;
                    break;
                }
                int32_t at = INLINED - node;
                for (Py_ssize_t f = location_starts[at]; f < location_starts[at + 1]; f++) {
                    frame[written++] = location_nodes[f];
                }
            }
            starts[i + 1] = written;
        }
    }
    free(out.ids64);
    free(direct);
    release_views(3, views);
    messages_release(&messages);
    if (status == 0 && PyByteArray_Resize(frames, written * 4) < 0) {
        status = -1;
    }
    if (status == 0) {
        PyObject *decoded = Py_BuildValue("(NNN)", offsets, frames, values);
        return outcome(decoded ? 0 : -1, decoded);
    }
    Py_XDECREF(values);
    Py_XDECREF(offsets);
    Py_XDECREF(frames);
    return outcome(status, NULL);
}

/* ---- locations ---- */

static const uint64_t LOCATION_FIELDS = TAG(1, VARINT) | TAG(2, VARINT) | TAG(3, VARINT) |
                                        TAG(4, LENGTH_DELIMITED) | TAG(5, VARINT);
static const uint64_t LINE_FIELDS = TAG(1, VARINT) | TAG(2, VARINT) | TAG(3, VARINT);

/* The function id of a Line (its last field 1, as upb keeps the last), or 1 if not valid. */
static int line_function(const uint8_t *p, const uint8_t *end, uint64_t *function_id) {
    *function_id = 0;
    while (p < end) {
        int number, wire;
        uint64_t value;
        const uint8_t *start, *stop;
        p = read_field(p, end, LINE_FIELDS, &number, &wire, &value, &start, &stop);
        if (p == NULL) {
            return 1;
        }
        if (number == 1) {
            *function_id = value;
        }
    }
    return 0;
}

PyDoc_STRVAR(decode_locations_doc,
"decode_locations(messages) -> (ids, mapping_ids, line_offsets, function_ids) or None\n\n"
"Of encoded Location messages (a list of bytes, or (data, bounds)): each location's id and\n"
"mapping id (uint64), where its lines start (intp, one past the last too) and each line's\n"
"function id (uint64), as bytearrays; None when an encoding is not one this decoder takes.");

static PyObject *decode_locations(PyObject *self, PyObject *args) {
    PyObject *messages_object;
    Messages messages;
    if (!PyArg_ParseTuple(args, "O", &messages_object) ||
        messages_of(messages_object, &messages) < 0) {
        return NULL;
    }
    Py_ssize_t count = messages.count;
    PyObject *ids = zeroed_bytearray((size_t)count * sizeof(uint64_t));
    PyObject *mappings = zeroed_bytearray((size_t)count * sizeof(uint64_t));
    PyObject *offsets = zeroed_bytearray((size_t)(count + 1) * sizeof(Py_ssize_t));
    Buffer functions = {0};
    int status = (ids && mappings && offsets) ? 0 : -1;
    Py_ssize_t lines = 0;
    for (Py_ssize_t i = 0; i < count && status == 0; i++) {
        const uint8_t *p, *end;
        message_at(&messages, i, &p, &end);
        while (p < end && status == 0) {
            int number, wire;
            uint64_t value;
            const uint8_t *start = NULL, *stop = NULL;
            p = read_field(p, end, LOCATION_FIELDS, &number, &wire, &value, &start, &stop);
            if (p == NULL) {
                status = 1;
            } else if (number == 1) {
                ((uint64_t *)PyByteArray_AS_STRING(ids))[i] = value;
            } else if (number == 2) {
                ((uint64_t *)PyByteArray_AS_STRING(mappings))[i] = value;
            } else if (number == 4) {
                uint64_t function_id;
                status = line_function(start, stop, &function_id);
                if (status == 0) {
                    status = put(&functions, &function_id, sizeof function_id);
                    lines++;
                }
            }
        }
        ((Py_ssize_t *)PyByteArray_AS_STRING(offsets))[i + 1] = lines;
    }
    messages_release(&messages);
    PyObject *out_functions = status == 0 ? as_bytearray(&functions) : NULL;
    free(functions.data);  /* as_bytearray took it, or it is given up */
    if (status == 0 && out_functions != NULL) {
        PyObject *decoded = Py_BuildValue("(NNNN)", ids, mappings, offsets, out_functions);
        return outcome(decoded ? 0 : -1, decoded);
    }
    Py_XDECREF(ids);
    Py_XDECREF(mappings);
    Py_XDECREF(offsets);
    return outcome(status == 0 ? -1 : status, NULL);
}

/* ---- the profile's top level ---- */

/* The wire type each field number of Profile (1 .. 15) has; -1 for none. Field 13, comment,
   a repeated int64, may also come packed. */
static const int PROFILE_WIRE[16] = {-1, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0};

/* The varint fields of a small message (ValueType, Mapping, Function: varints only), last
   occurrence of each kept in values[number] for numbers 1 .. fields; 0 if not valid. */
static int small_message(const uint8_t *p, const uint8_t *end, int fields, uint64_t *values) {
    for (int n = 0; n <= fields; n++) {
        values[n] = 0;
    }
    while (p < end) {
        uint8_t tag = *p++;
        int number = tag >> 3;
        if (tag >= 0x80 || (tag & 7) != VARINT || number < 1 || number > fields) {
            return 0;
        }
        int length = read_varint(p, end, &values[number]);
        if (length == 0) {
            return 0;
        }
        p += length;
    }
    return 1;
}

static int append_new(PyObject *list, PyObject *item) {
    if (item == NULL) {
        return -1;
    }
    int status = PyList_Append(list, item);
    Py_DECREF(item);
    return status;
}

PyDoc_STRVAR(split_profile_doc,
"split_profile(data) -> tuple or None\n\n"
"The top level of an encoded Profile, as ProfileView gives it: (sample_types [(type, unit)],\n"
"samples, mappings [(id, filename)], locations, functions [(id, name,\n"
"system_name)], strings [bytes], (drop_frames, keep_frames, time_nanos, duration_nanos,\n"
"period, default_sample_type), period_type (type, unit) or None, comments [int]). None for\n"
"what upb should decide: an unknown field, another wire type, period_type given twice,\n"
"data that is not valid. Samples and locations are not copied: each is the bounds of its\n"
"messages in `data`, (start, stop) pairs (intp) in a bytearray.");

static PyObject *split_profile(PyObject *self, PyObject *args) {
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*", &data)) {
        return NULL;
    }
    PyObject *lists[4] = {NULL}, *comments = NULL, *period_type = NULL;
    Buffer sample_bounds = {0}, location_bounds = {0};
    int status = 0;
    for (int k = 0; k < 4 && status == 0; k++) {
        lists[k] = PyList_New(0);
        status = lists[k] ? 0 : -1;
    }
    comments = status == 0 ? PyList_New(0) : NULL;
    if (status == 0 && comments == NULL) {
        status = -1;
    }
    PyObject *sample_types = lists[0], *mappings = lists[1];
    PyObject *functions = lists[2], *strings = lists[3];
    int64_t scalars[16] = {0};
    const uint8_t *p = data.buf, *end = p + data.len;
    while (p < end && status == 0) {
        uint8_t tag = *p++;
        int number = tag >> 3, wire = tag & 7;
        if (tag >= 0x80 || number < 1 || number > 15 ||
            (wire != PROFILE_WIRE[number] && !(number == 13 && wire == LENGTH_DELIMITED))) {
            status = 1;
            break;
        }
        uint64_t value;
        int length = read_varint(p, end, &value);
        if (length == 0) {
            status = 1;
            break;
        }
        p += length;
        if (wire == VARINT) {
            if (number == 13) {
                status = append_new(comments, PyLong_FromLongLong((int64_t)value));
            } else {
                scalars[number] = (int64_t)value;
            }
            continue;
        }
        if (value > (uint64_t)(end - p)) {
            status = 1;
            break;
        }
        const uint8_t *start = p, *stop = p + value;
        p = stop;
        uint64_t fields[11];
        switch (number) {
        case 1:   /* sample_type */
        case 11:  /* period_type */
            if (!small_message(start, stop, 2, fields) || (number == 11 && period_type)) {
                status = 1;
            } else if (number == 1) {
                status = append_new(sample_types, Py_BuildValue("(LL)", (long long)fields[1],
                                                                (long long)fields[2]));
            } else {
                period_type = Py_BuildValue("(LL)", (long long)fields[1], (long long)fields[2]);
                status = period_type ? 0 : -1;
            }
            break;
        case 3:  /* mapping */
            status = small_message(start, stop, 10, fields)
                         ? append_new(mappings, Py_BuildValue("(KL)",
                                                              (unsigned long long)fields[1],
                                                              (long long)fields[5]))
                         : 1;
            break;
        case 5:  /* function */
            status = small_message(start, stop, 5, fields)
                         ? append_new(functions,
                                      Py_BuildValue("(KLL)", (unsigned long long)fields[1],
                                                    (long long)fields[2], (long long)fields[3]))
                         : 1;
            break;
        case 13:  /* comment, packed */
            while (start < stop && status == 0) {
                int size = read_varint(start, stop, &value);
                if (size == 0) {
                    status = 1;
                } else {
                    start += size;
                    status = append_new(comments, PyLong_FromLongLong((int64_t)value));
                }
            }
            break;
        case 2:  /* sample */
        case 4: {  /* location: where each is, not a copy */
            Py_ssize_t bounds[2] = {start - (const uint8_t *)data.buf,
                                    stop - (const uint8_t *)data.buf};
            status = put(number == 2 ? &sample_bounds : &location_bounds, bounds, sizeof bounds);
            break;
        }
        default:  /* 6 string_table: the bytes themselves */
            status = append_new(strings, PyBytes_FromStringAndSize((const char *)start,
                                                                   stop - start));
        }
    }
    PyBuffer_Release(&data);
    PyObject *result = NULL, *samples = NULL, *locations = NULL;
    if (status == 0) {
        samples = as_bytearray(&sample_bounds);
        locations = as_bytearray(&location_bounds);
        status = samples && locations ? 0 : -1;
    }
    free(sample_bounds.data);  /* as_bytearray took them, or they are given up */
    free(location_bounds.data);
    if (status == 0) {
        if (period_type == NULL) {
            period_type = Py_NewRef(Py_None);
        }
        result = Py_BuildValue("(OOOOOO(LLLLLL)OO)", sample_types, samples, mappings,
                               locations, functions, strings, (long long)scalars[7],
                               (long long)scalars[8], (long long)scalars[9],
                               (long long)scalars[10], (long long)scalars[12],
                               (long long)scalars[14], period_type, comments);
    }
    for (int k = 0; k < 4; k++) {
        Py_XDECREF(lists[k]);
    }
    Py_XDECREF(samples);
    Py_XDECREF(locations);
    Py_XDECREF(comments);
    Py_XDECREF(period_type);
    return outcome(status == 0 && result == NULL ? -1 : status, result);
}

/* ---- pprof's function table ---- */

PyDoc_STRVAR(function_table_doc,
"function_table(offsets, frames, column, size) -> (flat, cum, present) or None\n\n"
"Per node 0 .. size - 1: the sum of `column` (int64) over the samples whose leaf it is\n"
"(int64), over the samples it is on, once each (int64), and whether a sample with a non-zero\n"
"value has it (bool), as bytearrays. The caller guarantees no sum overflows (model.py keeps\n"
"such columns as Python ints). None when a frame is not a node.");

static PyObject *function_table(PyObject *self, PyObject *args) {
    PyObject *offsets_object, *frames_object, *column_object;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "OOOn", &offsets_object, &frames_object, &column_object, &size)) {
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "size must not be negative");
        return NULL;
    }
    Py_buffer offsets, frames, column;
    Py_buffer *views[] = {&offsets, &frames, &column};
    if (views_of(3, views, (PyObject *[]){offsets_object, frames_object, column_object},
                 (const Py_ssize_t[]){sizeof(Py_ssize_t), 4, 8},
                 (const char *[]){"offsets", "frames", "column"}) < 0) {
        return NULL;
    }
    Py_ssize_t sample_count = offsets.len / offsets.itemsize - 1;
    Py_ssize_t frame_count = frames.len / frames.itemsize;
    PyObject *flat = zeroed_bytearray((size_t)size * sizeof(int64_t));
    PyObject *cum = zeroed_bytearray((size_t)size * sizeof(int64_t));
    PyObject *present = zeroed_bytearray((size_t)size);
    /* The last sample that added to each node's cum: a node recurring on a stack counts once. */
    Py_ssize_t *seen = malloc((size_t)(size ? size : 1) * sizeof(Py_ssize_t));
    int status = (flat && cum && present && seen) ? 0 : -1;
    if (status == 0 && sample_count != column.len / column.itemsize) {
        PyErr_SetString(PyExc_ValueError, "one value per sample is needed");
        status = -1;
    }
    if (status == 0) {
        int64_t *flat_sums = (int64_t *)PyByteArray_AS_STRING(flat);
        int64_t *cum_sums = (int64_t *)PyByteArray_AS_STRING(cum);
        char *has = PyByteArray_AS_STRING(present);
        const Py_ssize_t *starts = offsets.buf;
        const int32_t *nodes = frames.buf;
        const int64_t *values = column.buf;
        for (Py_ssize_t n = 0; n < size; n++) {
            seen[n] = -1;
        }
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t s = 0; s < sample_count && status == 0; s++) {
            Py_ssize_t lo = starts[s], hi = starts[s + 1];
            if (lo < 0 || hi < lo || hi > frame_count) {
                status = 1;
                break;
            }
            int64_t value = values[s];
            for (Py_ssize_t k = lo; k < hi; k++) {
                int32_t node = nodes[k];
                if (node < 0 || node >= size) {
                    status = 1;
                    break;
                }
                if (k == lo) {
                    flat_sums[node] += value;
                }
                if (seen[node] != s) {
                    seen[node] = s;
                    cum_sums[node] += value;
                    has[node] |= value != 0;
                }
            }
        }
        Py_END_ALLOW_THREADS
    }
    free(seen);
    release_views(3, views);
    if (status == 0) {
        PyObject *table = Py_BuildValue("(NNN)", flat, cum, present);
        return outcome(table ? 0 : -1, table);
    }
    Py_XDECREF(flat);
    Py_XDECREF(cum);
    Py_XDECREF(present);
    return outcome(status, NULL);
}

/* ---- call stacks ---- */

PyDoc_STRVAR(translate_doc,
"translate(table, nodes, out=None) -> translated or None\n\n"
"table[node] for each of `nodes` (both int32), as a bytearray, or written into `out` (a\n"
"writable buffer of as many int32, returned): np.take(table, nodes) without numpy's copy of\n"
"the indices to intp first. None when a node is outside the table (out is then left part\n"
"written).");

static PyObject *translate(PyObject *self, PyObject *args) {
    PyObject *table_object, *nodes_object, *out_object = Py_None;
    if (!PyArg_ParseTuple(args, "OO|O", &table_object, &nodes_object, &out_object)) {
        return NULL;
    }
    Py_buffer table, nodes, given;
    Py_buffer *views[] = {&table, &nodes};
    if (views_of(2, views, (PyObject *[]){table_object, nodes_object},
                 (const Py_ssize_t[]){4, 4},
                 (const char *[]){"table", "nodes"}) < 0) {
        return NULL;
    }
    Py_ssize_t size = table.len / 4, count = nodes.len / 4;
    PyObject *out = NULL;
    int32_t *translated = NULL;
    int holding = 0;  /* a view of `out_object`, released after the loop */
    if (out_object == Py_None) {
        out = PyByteArray_FromStringAndSize(NULL, count * 4);
        translated = out ? (int32_t *)PyByteArray_AS_STRING(out) : NULL;
    } else if (PyObject_GetBuffer(out_object, &given, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) == 0) {
        holding = 1;
        if (given.len == nodes.len) {
            out = Py_NewRef(out_object);
            translated = given.buf;
        } else {
            PyErr_SetString(PyExc_ValueError, "out: as many bytes as nodes expected");
        }
    }
    int status = out ? 0 : -1;
    if (status == 0) {
        const int32_t *by_node = table.buf;
        const int32_t *in = nodes.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t k = 0; k < count; k++) {
            int32_t node = in[k];
            if (node < 0 || node >= size) {
                status = 1;
                break;
            }
            translated[k] = by_node[node];
        }
        Py_END_ALLOW_THREADS
    }
    if (holding) {
        PyBuffer_Release(&given);
    }
    release_views(2, views);
    return outcome(status, out);
}

PyDoc_STRVAR(stack_hashes_doc,
"stack_hashes(offsets, frames, multipliers) -> hashes or None\n\n"
"Per sample (its frames are frames[offsets[i] .. offsets[i + 1] - 1], int32): its length\n"
"times the last multiplier plus, for each frame at depth k, (frame + 1) times multipliers[k],\n"
"all modulo 2**64 (uint64, as a bytearray). None when a stack is deeper than the\n"
"multipliers.");

static PyObject *stack_hashes(PyObject *self, PyObject *args) {
    PyObject *offsets_object, *frames_object, *multipliers_object;
    if (!PyArg_ParseTuple(args, "OOO", &offsets_object, &frames_object, &multipliers_object)) {
        return NULL;
    }
    Py_buffer offsets, frames, multipliers;
    Py_buffer *views[] = {&offsets, &frames, &multipliers};
    if (views_of(3, views, (PyObject *[]){offsets_object, frames_object, multipliers_object},
                 (const Py_ssize_t[]){sizeof(Py_ssize_t), 4, 8},
                 (const char *[]){"offsets", "frames", "multipliers"}) < 0) {
        return NULL;
    }
    Py_ssize_t count = offsets.len / offsets.itemsize - 1;
    Py_ssize_t frame_count = frames.len / frames.itemsize;
    Py_ssize_t depths = multipliers.len / multipliers.itemsize - 1;  /* the last: the length's */
    PyObject *out = count >= 0 && depths >= 0
                        ? PyByteArray_FromStringAndSize(NULL, count * sizeof(uint64_t))
                        : NULL;
    int status = out ? 0 : (PyErr_Occurred() ? -1 : 1);
    if (status == 0) {
        const Py_ssize_t *starts = offsets.buf;
        const int32_t *nodes = frames.buf;
        const uint64_t *by_depth = multipliers.buf;
        uint64_t *hashes = (uint64_t *)PyByteArray_AS_STRING(out);
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < count; i++) {
            Py_ssize_t lo = starts[i], hi = starts[i + 1];
            if (lo < 0 || hi < lo || hi > frame_count || hi - lo > depths) {
                status = 1;
                break;
            }
            uint64_t hash = (uint64_t)(hi - lo) * by_depth[depths];
            for (Py_ssize_t k = lo; k < hi; k++) {
                /* as numpy: the int32 node converted to uint64 (sign-extended), plus one */
                hash += ((uint64_t)(int64_t)nodes[k] + 1) * by_depth[k - lo];
            }
            hashes[i] = hash;
        }
        Py_END_ALLOW_THREADS
    }
    release_views(3, views);
    return outcome(status, out);
}

PyDoc_STRVAR(same_stacks_doc,
"same_stacks(offsets, frames, representative) -> bool\n\n"
"Whether every sample's frames (int32; sample i's are frames[offsets[i] .. offsets[i + 1] -\n"
"1]) equal those of sample representative[i] (intp).");

static PyObject *same_stacks(PyObject *self, PyObject *args) {
    PyObject *offsets_object, *frames_object, *representative_object;
    if (!PyArg_ParseTuple(args, "OOO", &offsets_object, &frames_object, &representative_object)) {
        return NULL;
    }
    Py_buffer offsets, frames, representative;
    Py_buffer *views[] = {&offsets, &frames, &representative};
    if (views_of(3, views, (PyObject *[]){offsets_object, frames_object, representative_object},
                 (const Py_ssize_t[]){sizeof(Py_ssize_t), 4, sizeof(Py_ssize_t)},
                 (const char *[]){"offsets", "frames", "representative"}) < 0) {
        return NULL;
    }
    Py_ssize_t count = offsets.len / offsets.itemsize - 1;
    Py_ssize_t frame_count = frames.len / frames.itemsize;
    const Py_ssize_t *starts = offsets.buf;
    const int32_t *nodes = frames.buf;
    const Py_ssize_t *other = representative.buf;
    int same = count >= 0 && representative.len / representative.itemsize == count &&
               (count == 0 || starts[count] <= frame_count);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count && same; i++) {
        Py_ssize_t j = other[i];
        if (j == i) {
            continue;
        }
        if (j < 0 || j >= count) {
            same = 0;
            break;
        }
        Py_ssize_t length = starts[i + 1] - starts[i];
        same = length == starts[j + 1] - starts[j] && length >= 0 &&
               memcmp(nodes + starts[i], nodes + starts[j], (size_t)length * 4) == 0;
    }
    Py_END_ALLOW_THREADS
    release_views(3, views);
    return PyBool_FromLong(same);
}

static PyMethodDef methods[] = {
    {"decode_samples", decode_samples, METH_VARARGS, decode_samples_doc},
    {"decode_sample_frames", decode_sample_frames, METH_VARARGS, decode_sample_frames_doc},
    {"decode_locations", decode_locations, METH_VARARGS, decode_locations_doc},
    {"split_profile", split_profile, METH_VARARGS, split_profile_doc},
    {"function_table", function_table, METH_VARARGS, function_table_doc},
    {"translate", translate, METH_VARARGS, translate_doc},
    {"stack_hashes", stack_hashes, METH_VARARGS, stack_hashes_doc},
    {"same_stacks", same_stacks, METH_VARARGS, same_stacks_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "oomforensics.pprof._kernels",
    "The decoder's inner loops in C (see _kernels.c); numpy does the same without it.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
