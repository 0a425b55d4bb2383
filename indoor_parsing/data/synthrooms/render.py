"""Ray-cast RGB-D rendering of a SynthRooms scene (open3d RaycastingScene), shading, sensor noise, point clouds.

All rays of a frame are cast at once. Camera ray directions have unit z in camera coordinates, so the hit distance
``t_hit`` is the z-depth. The hit triangle gives the object (class, instance, material) and the normal. Shading is
Lambertian: ``albedo * (ambient + sum_l colour_l max(0, n.l) / (1 + d_l^2 / 4) + sun max(0, -n.s))`` with no shadows,
then gamma 2 to 8-bit; the point cloud is shaded with the same function so its colours match the frames.
"""

import numpy as np

from indoor_parsing.data.synthrooms.meshes import assemble, inside_other_parts, sample_surface, triangle_normals
from indoor_parsing.data.synthrooms.scene import Scene
from indoor_parsing.data.synthrooms.surfaces import texture_tiles
from indoor_parsing.data.taxonomy import NYU40_ID

# Kinect (NYU-Dv2) colour camera at 640 x 480.
KINECT_FX, KINECT_FY, KINECT_CX, KINECT_CY = 518.8579, 518.8579, 319.5, 239.5
TILE = 32  # texels per texture period (a power of two)


def kinect_intrinsics(height: int, width: int) -> np.ndarray:
    """(3, 3) Kinect intrinsics scaled to ``height x width`` (pixel centres at integer coordinates).

    A pixel centre u of the 640-wide image lies at s (u + 0.5) - 0.5 in the resized one, hence cx' = s (cx + 0.5) - 0.5.
    """
    sx, sy = width / 640.0, height / 480.0
    return np.array([
        [KINECT_FX * sx, 0.0, sx * (KINECT_CX + 0.5) - 0.5],
        [0.0, KINECT_FY * sy, sy * (KINECT_CY + 0.5) - 0.5],
        [0.0, 0.0, 1.0],
    ])  # fmt: skip


def camera_rays(K: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H*W, 3) camera-frame ray directions with unit z, row-major."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    x = (u.ravel() - K[0, 2]) / K[0, 0]
    y = (v.ravel() - K[1, 2]) / K[1, 1]
    return np.stack([x, y, np.ones_like(x)], 1)


_NOISE = np.random.default_rng(20240607).standard_normal(1 << 20, np.float32)


def _gaussian(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Standard normal noise as a random window of a fixed buffer: per-pixel draws would cost more than ray casting."""
    size = int(np.prod(shape))
    if size > len(_NOISE) // 2:
        return rng.standard_normal(shape, np.float32)
    start = int(rng.integers(len(_NOISE) - size))
    return _NOISE[start : start + size].reshape(shape)


class Renderer:
    """Renders frames and samples the labelled point cloud of one scene.

    Args:
        scene: the sampled room.
        nthreads: open3d ray-casting threads (0 = all cores).
    """

    def __init__(self, scene: Scene, nthreads: int = 0):
        import open3d as o3d  # imported here: reading a generated dataset must not need it

        self.scene, self.nthreads, self._o3d = scene, nthreads, o3d
        self.mesh = assemble([o.parts for o in scene.objects])
        owners = [o for o in scene.objects for _ in o.parts]
        self.parts = [p for o in scene.objects for p in o.parts]
        # The room shell only touches other objects' faces that are already dropped (bottoms, backs), so it need
        # not be tested as an occluder: it would cost a pass over all points per wall.
        shell = {NYU40_ID[n] for n in ("wall", "floor", "ceiling")}
        self.occluders = [i for i, o in enumerate(owners) if o.label not in shell]
        self.raycaster = o3d.t.geometry.RaycastingScene()
        self.raycaster.add_triangles(
            o3d.core.Tensor(self.mesh.vertices), o3d.core.Tensor(self.mesh.triangles.astype(np.uint32))
        )
        objs = scene.objects
        self.obj_label = np.array([0] + [o.label for o in objs], np.uint8)  # row 0: no hit
        self.obj_instance = np.array([0] + [o.instance for o in objs], np.uint16)
        self.tri_object = self.mesh.tri_object + 1
        self.tri_material = self.mesh.tri_object * 2 + self.mesh.tri_slot  # two material slots per object
        # Texture lookup per triangle: the two world axes across its dominant normal axis, and its material tile.
        normals, _ = triangle_normals(self.mesh)
        axis = np.abs(normals).argmax(1)
        self.tri_axes = np.stack([np.where(axis == 0, 1, 0), np.where(axis == 2, 1, 2)], 1)  # (T, 2)
        mats = [m for o in objs for m in o.materials]
        material = self.mesh.tri_object * 2 + self.mesh.tri_slot  # two material slots per object
        self.tri_scale = np.array([TILE / m.period for m in mats], np.float32)[material]  # tile cells per metre
        self.tri_tile = material * TILE * TILE
        self.tiles = texture_tiles(mats, TILE).reshape(-1, 3)  # (M * TILE * TILE, 3)
        self._rays: dict = {}

    def _albedo(self, p: np.ndarray, tri: np.ndarray) -> np.ndarray:
        """(N, 3) albedo: nearest texel of the material tile at the surface coordinates of each point."""
        flat = np.arange(len(p))[:, None] * 3 + self.tri_axes[tri]  # (N, 2) into p.ravel()
        uv = np.floor(p.ravel()[flat] * self.tri_scale[tri][:, None]).astype(np.int64) & (TILE - 1)
        return self.tiles[self.tri_tile[tri] + uv[:, 0] * TILE + uv[:, 1]]

    def _irradiance(self, p: np.ndarray, n: np.ndarray) -> np.ndarray:
        """(N, 3) incoming light: ambient + sun + point lights, the point-light terms as (N, L) matrix products."""
        sc = self.scene
        pos = sc.light_positions.astype(np.float32)  # (L, 3)
        light = np.maximum(n @ -sc.sun_direction.astype(np.float32), 0)[:, None] * sc.sun_colour.astype(np.float32)
        light += sc.ambient.astype(np.float32)
        # |pos - p|^2 and n.(pos - p) expanded, so that only (N, L) arrays are formed
        dist2 = np.einsum("ij,ij->i", p, p)[:, None] - 2 * (p @ pos.T) + np.einsum("ij,ij->i", pos, pos)[None]
        dist2 = np.maximum(dist2, 1e-6)
        ndot = n @ pos.T - np.einsum("ij,ij->i", n, p)[:, None]
        lambert = np.maximum(ndot, 0) / (np.sqrt(dist2) * (1.0 + dist2 / 4.0))  # soft inverse-square falloff
        return light + lambert @ sc.light_colours.astype(np.float32)

    def shade(self, points: np.ndarray, normals: np.ndarray, tri: np.ndarray) -> np.ndarray:
        """(N, 3) float colour in [0, 1] (gamma applied) of surface points on triangles ``tri``."""
        points, normals = points.astype(np.float32, copy=False), normals.astype(np.float32, copy=False)
        linear = self._albedo(points, tri) * self._irradiance(points, normals)
        return np.sqrt(np.clip(linear, 0.0, 1.0, out=linear), out=linear)

    def render(
        self, K: np.ndarray, pose: np.ndarray, height: int, width: int, rng: np.random.Generator | None = None
    ) -> dict[str, np.ndarray]:
        """Render one frame; with ``rng`` sensor noise is added to RGB and depth, without it the frame is exact.

        Args:
            K: (3, 3) intrinsics.
            pose: (4, 4) camera-to-world, OpenCV camera axes.
            height, width: image size.
            rng: noise generator, or None for a noise-free frame.

        Returns:
            rgb (H, W, 3) uint8, depth (H, W) float32 metres (0 = no return), label (H, W) uint8 NYU-40 ids,
            instance (H, W) uint16, and depth_clean (H, W) float32 the exact z-depth of the hit point.
        """
        key = (K.tobytes(), height, width)
        if key not in self._rays:
            cam = camera_rays(K, height, width)
            self._rays = {key: (cam.astype(np.float32), (1.0 / np.linalg.norm(cam, axis=1)).astype(np.float32))}
        cam, inv_len = self._rays[key]
        c = pose[:3, 3].astype(np.float32)
        dirs = cam @ pose[:3, :3].T.astype(np.float32)  # (N, 3) world directions, camera z component 1
        rays = np.empty((len(dirs), 6), np.float32)
        rays[:, :3], rays[:, 3:] = c, dirs
        hit = self.raycaster.cast_rays(self._o3d.core.Tensor.from_numpy(rays), nthreads=self.nthreads)
        t = hit["t_hit"].numpy()
        valid = np.isfinite(t)
        t = np.where(valid, t, np.float32(0))
        tri = np.where(valid, hit["primitive_ids"].numpy(), 0)
        obj = np.where(valid, self.tri_object[tri], 0)
        n = hit["primitive_normals"].numpy()
        cos = np.einsum("ij,ij->i", n, dirs) * inv_len
        n = n * -np.sign(cos)[:, None]  # face the camera
        colour = self.shade(c + t[:, None] * dirs, n, tri)
        depth = t
        if rng is not None:
            st = self.scene.style
            colour = colour * 255.0 + np.float32(st.rgb_noise) * _gaussian(colour.shape, rng)
            depth = t * (1.0 + np.float32(st.depth_noise) * _gaussian(t.shape, rng))  # noise grows with depth
            drop = np.abs(cos) < st.grazing_cos * rng.random(t.shape, np.float32)  # grazing surfaces return less
            depth[drop | self._holes(height, width, st.depth_holes, rng)] = 0.0
        else:
            colour = colour * 255.0
        colour[~valid] = 0.0
        return {
            "rgb": np.clip(colour + 0.5, 0, 255).astype(np.uint8).reshape(height, width, 3),
            "depth": np.where(valid, depth, np.float32(0)).reshape(height, width),
            "label": self.obj_label[obj].reshape(height, width),
            "instance": self.obj_instance[obj].reshape(height, width),
            "depth_clean": t.reshape(height, width),
        }

    @staticmethod
    def _holes(height: int, width: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
        """(H*W,) blob-shaped dropout: a coarse random grid thresholded at ``fraction`` and upsampled."""
        cell = 6
        coarse = rng.random(((height + cell - 1) // cell, (width + cell - 1) // cell)) < fraction
        return np.repeat(np.repeat(coarse, cell, 0), cell, 1)[:height, :width].ravel()

    def point_cloud(self, num_points: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Labelled points uniform over the surface area: xyz float32 (world), rgb uint8, label uint8, instance.

        ``num_points`` are drawn over all faces; those hidden inside other parts are then dropped, so the visible
        surfaces keep the density ``num_points / surface_area()``.
        """
        points, normals, tri = sample_surface(self.mesh, num_points, rng)
        visible = ~inside_other_parts(points, self.mesh.tri_part[tri], self.parts, self.occluders)
        points, normals, tri = points[visible], normals[visible], tri[visible]
        obj = self.tri_object[tri]
        rgb = np.clip(self.shade(points, normals, tri) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return {
            "xyz": points.astype(np.float32),
            "rgb": rgb,
            "label": self.obj_label[obj],
            "instance": self.obj_instance[obj],
        }

    def surface_area(self) -> float:
        v = self.mesh.vertices.astype(np.float64)[self.mesh.triangles]
        return float(np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1).sum() / 2)
