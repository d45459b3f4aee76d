// What the `libcamera` crate 0.2.3 cannot do (docs/cameras.md): read a
// camera's ControlInfoMap (its ControlInfoMap type is opaque: no iterator,
// no min/max/default), and set a control by numeric id with the camera's
// own type (its ControlList::set only takes compile-time control types).
// Plain C functions over libcamera 0.0.3's C++ API, called from camera.rs.

#include <libcamera/control_ids.h>
#include <libcamera/controls.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

extern "C" {

// Mirrors `RawInfo` in camera.rs (repr(C)).
struct pinhole_control_info {
    uint32_t id;
    int32_t ctype; // libcamera::ControlType
    double min;
    double max;
    double def;
    int32_t has_def;
    char name[65];
};

static bool scalar(const libcamera::ControlValue &v, libcamera::ControlType t, double *out)
{
    if (v.isArray() || v.type() != t)
        return false;
    switch (t) {
    case libcamera::ControlTypeBool:
        *out = v.get<bool>() ? 1.0 : 0.0;
        return true;
    case libcamera::ControlTypeInteger32:
        *out = v.get<int32_t>();
        return true;
    case libcamera::ControlTypeInteger64:
        *out = static_cast<double>(v.get<int64_t>());
        return true;
    case libcamera::ControlTypeFloat:
        *out = v.get<float>();
        return true;
    default:
        return false;
    }
}

// Fills up to `cap` entries with the camera's scalar bool/int/float
// controls; array, string, rectangle and size controls, and names longer
// than 64 bytes, are skipped. Returns the number filled.
size_t pinhole_control_infos(const void *map, struct pinhole_control_info *out, size_t cap)
{
    const auto *m = static_cast<const libcamera::ControlInfoMap *>(map);
    size_t n = 0;
    for (const auto &entry : *m) {
        if (n == cap)
            break;
        const libcamera::ControlId *id = entry.first;
        const libcamera::ControlInfo &info = entry.second;
        struct pinhole_control_info *o = &out[n];
        std::memset(o, 0, sizeof(*o));
        libcamera::ControlType t = id->type();
        if (!scalar(info.min(), t, &o->min) || !scalar(info.max(), t, &o->max))
            continue;
        o->has_def = scalar(info.def(), t, &o->def) ? 1 : 0;
        const std::string &name = id->name();
        if (name.empty() || name.size() > 64)
            continue;
        std::memcpy(o->name, name.data(), name.size());
        o->id = id->id();
        o->ctype = static_cast<int32_t>(t);
        n++;
    }
    return n;
}

// Sets control `id` of libcamera type `ctype` in a request's ControlList:
// bools and integers from `i`, floats from `f`. 0, or -1 for a type this
// shim does not set.
int pinhole_control_list_set(void *list, uint32_t id, int32_t ctype, int64_t i, double f)
{
    auto *l = static_cast<libcamera::ControlList *>(list);
    switch (static_cast<libcamera::ControlType>(ctype)) {
    case libcamera::ControlTypeBool:
        l->set(id, libcamera::ControlValue(i != 0));
        return 0;
    case libcamera::ControlTypeInteger32:
        l->set(id, libcamera::ControlValue(static_cast<int32_t>(i)));
        return 0;
    case libcamera::ControlTypeInteger64:
        l->set(id, libcamera::ControlValue(static_cast<int64_t>(i)));
        return 0;
    case libcamera::ControlTypeFloat:
        l->set(id, libcamera::ControlValue(static_cast<float>(f)));
        return 0;
    default:
        return -1;
    }
}

// Asks for a fixed frame duration (min = max = `us`), i.e. the frame rate:
// the crate has no FrameDurationLimits (a two-element array control). A
// camera without the control refuses it through the request's validator
// (a libcamera log line) and keeps its sensor mode's rate.
void pinhole_set_frame_duration(void *list, int64_t us)
{
    auto *l = static_cast<libcamera::ControlList *>(list);
    const int64_t d[2] = {us, us};
    l->set(libcamera::controls::FrameDurationLimits, libcamera::Span<const int64_t, 2>(d));
}

} // extern "C"
