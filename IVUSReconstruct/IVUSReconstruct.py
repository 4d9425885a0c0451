"""IVUS Reconstruct: 3D Slicer scripted module.

Shell classes only (module, parameter node, widget, logic, test); the work is done by
``IVUSReconstructLib`` (``pipeline`` for the computation, ``mrml`` for nodes <-> core types).
"""

import logging
import os
import threading
from pathlib import Path
from typing import Annotated, Union

import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from IVUSReconstructLib.limits import ACQUISITION_OPTIONS, LIMITS
from slicer import (
    vtkMRMLMarkupsCurveNode,
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLModelNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)

PHANTOM_PRESETS = ("coronary", "femoropopliteal", "iliac-vein")


def _resourcePath(moduleDir, relativePath):
    """A resource in the built extension (module/Resources) or in the source tree (../Resources)."""
    for base in (os.path.join(moduleDir, "Resources"), os.path.join(moduleDir, os.pardir, "Resources")):
        candidate = os.path.normpath(os.path.join(base, relativePath))
        if os.path.exists(candidate):
            return candidate
    return os.path.join(moduleDir, "Resources", relativePath)


#
# IVUSReconstruct
#


class IVUSReconstruct(ScriptedLoadableModule):
    """Module metadata; see https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py"""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("IVUS Reconstruct")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Cardiac"), translate("qSlicerAbstractCoreModule", "Vascular")]
        self.parent.dependencies = ["Markups", "Segmentations"]
        self.parent.contributors = ["IVUSReconstruct contributors"]
        self.parent.helpText = _(
            "Turns an intravascular ultrasound (IVUS) pullback into a 3D vessel: end-diastolic gating, "
            "lumen and vessel (EEM) segmentation, placement of the frames on a centerline (markups curve "
            "or VMTK centerline model), lumen/vessel/wall models coloured by plaque burden, per-frame and "
            "volumetric metrics (MLA, reference frames, area stenosis, plaque volume, PAV, TAV). "
            "Edit the contours with the Segment Editor and press <b>Update from segmentation</b>. "
            'See the <a href="https://github.com/ivus-reconstruct/SlicerIVUSReconstruct">project page</a>.'
        )
        self.parent.acknowledgementText = _(
            "Developed by the IVUSReconstruct contributors, after 3D Slicer's scripted module template. "
            "Not for clinical use."
        )
        slicer.app.connect("startupCompleted()", registerSampleData)


#
# Sample data: phantom pullbacks generated locally (no download)
#


def registerSampleData():
    """Add the phantom presets to the Sample Data module."""
    import SampleData

    iconPath = _resourcePath(os.path.dirname(__file__), "Icons/IVUSReconstruct.png")
    for preset in PHANTOM_PRESETS:
        SampleData.SampleDataLogic.registerCustomSampleDataSource(
            category="IVUSReconstruct",
            sampleName=f"IVUSPhantom-{preset}",
            thumbnailFileName=iconPath,
            uris=None,
            fileNames=None,
            nodeNames=f"IVUS phantom {preset}",
            customDownloader=lambda source, preset=preset: loadPhantom(preset),
        )


def loadPhantom(preset, lengthMm=None):
    """Generate a phantom and add its pullback volume and centerline curve to the scene."""
    from IVUSReconstructLib import mrml
    from IVUSReconstructLib.phantom import make_phantom

    with slicer.util.WaitCursor():
        phantom = make_phantom(preset, length_mm=lengthMm)
        volumeNode = mrml.pullback_to_volume_node(slicer.mrmlScene, phantom.pullback, f"IVUS phantom {preset}")
        curveNode = mrml.centerline_to_curve_node(slicer.mrmlScene, phantom.centerline, f"IVUS phantom {preset} centerline")
    slicer.util.setSliceViewerLayers(background=volumeNode, fit=True)
    return [volumeNode, curveNode]


#
# IVUSReconstructParameterNode
#


@parameterNodeWrapper
class IVUSReconstructParameterNode:
    """Inputs, acquisition facts and outputs of a reconstruction.

    inputVolume - the pullback, one frame per slice.
    inputCenterline - markups curve or VMTK centerline model, first point distal unless centerlineOrder says otherwise.
    inputContours - segmentation with Lumen, Vessel (and Calcium) segments; empty to segment the images.
    inputLandmarks - point list whose labels are frame numbers (side branches).
    pullbackSpeed, frameRate, pixelSpacing - acquisition; 0 means "from the data".
    startMm - arc length of frame 0 from the first centerline point.
    align, mirror, gating, centerlineOrder, territory - as the command line options of the same names
        (territory "auto" = coronary, or the vein analysed).
    outputFolder - when set, the output folder of the command line is written there as well.
    outputSegmentation, outputWallModel, outputTable - results.
    currentFrame - frame shown at its place in the 3D view.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    inputCenterline: Union[vtkMRMLMarkupsCurveNode, vtkMRMLModelNode]
    inputContours: vtkMRMLSegmentationNode
    inputLandmarks: vtkMRMLMarkupsFiducialNode
    # upper bounds from the one range table (IVUSReconstructLib/limits.py); 0 means "from the data"
    pullbackSpeed: Annotated[float, WithinRange(0.0, LIMITS["pullback_speed_mm_s"].high)] = 0.0
    frameRate: Annotated[float, WithinRange(0.0, LIMITS["frame_rate_hz"].high)] = 0.0
    pixelSpacing: Annotated[float, WithinRange(0.0, LIMITS["pixel_spacing_mm"].high)] = 0.0
    startMm: Annotated[float, WithinRange(LIMITS["start_mm"].low, LIMITS["start_mm"].high)] = 0.0
    align: Annotated[str, Choice(["catheter", "lumen-centroid"])] = "catheter"
    mirror: bool = False
    gating: Annotated[str, Choice(["image", "none"])] = "image"
    centerlineOrder: Annotated[str, Choice(["distal-first", "proximal-first"])] = "distal-first"
    territory: Annotated[
        str, Choice(["auto", "coronary", "femoropopliteal", "iliac-artery", "iliac-vein", "femoral-vein"])
    ] = "auto"
    outputFolder: Path
    outputSegmentation: vtkMRMLSegmentationNode
    outputWallModel: vtkMRMLModelNode
    outputTable: vtkMRMLTableNode
    currentFrame: Annotated[int, WithinRange(0, 100000)] = 0


def ensureDependencies():
    """On first use: tell the user which packages are missing and install them after confirmation.

    The check and the text live in IVUSReconstructLib.dependencies (tested without Slicer);
    Slicer's own packages are pinned so that nothing it is built against gets replaced.
    Returns True when everything needed is importable.
    """
    import importlib
    import tempfile

    from IVUSReconstructLib import dependencies

    problems = dependencies.check_requirements()
    if not problems:
        return True
    toInstall = dependencies.pip_requirements(problems)
    message = dependencies.missing_message(problems)
    if not toInstall or len(toInstall) < len(problems):
        slicer.util.errorDisplay(message, windowTitle=_("IVUSReconstruct: missing Python packages"))
        return False
    if not slicer.util.confirmOkCancelDisplay(message, windowTitle=_("IVUSReconstruct: install Python packages")):
        return False
    with tempfile.TemporaryDirectory() as folder:
        constraints = Path(folder) / "slicer-constraints.txt"
        constraints.write_text("\n".join(dependencies.bundled_constraints()) + "\n")
        with slicer.util.tryWithErrorDisplay(_("Installing the Python packages failed."), waitCursor=True):
            slicer.util.pip_install(toInstall, constraints=constraints)
    importlib.invalidate_caches()
    return not dependencies.check_requirements()


#
# IVUSReconstructWidget
#


class IVUSReconstructWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """GUI bound to Resources/UI/IVUSReconstruct.ui through SlicerParameterName properties."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(_resourcePath(os.path.dirname(__file__), "UI/IVUSReconstruct.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = IVUSReconstructLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.updateFromSegmentationButton.connect("clicked(bool)", self.onUpdateFromSegmentation)
        self.ui.propagateEditsButton.connect("clicked(bool)", self.onPropagateEdits)
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onInputVolumeChanged)
        self.ui.currentFrameSlider.connect("valueChanged(double)", self.onCurrentFrameChanged)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        node = self._parameterNode
        canApply = bool(node and (node.inputVolume or node.inputContours))
        self.ui.applyButton.enabled = canApply
        self.ui.applyButton.toolTip = _("Reconstruct the vessel") if canApply else _("Select a pullback volume or contours")
        self.ui.updateFromSegmentationButton.enabled = bool(node and node.outputSegmentation and self.logic.lastResult)
        self.ui.propagateEditsButton.enabled = bool(
            node and node.outputSegmentation and self.logic.lastResult and self.logic.lastResult.pullback is not None
        )

    def onInputVolumeChanged(self, volumeNode) -> None:
        """Pre-fill the acquisition fields from the volume (DICOM tags or earlier runs); they stay editable."""
        if not volumeNode or not self._parameterNode:
            return
        facts = self.logic.acquisitionFromVolume(volumeNode)
        for field, value in facts.items():
            if value:
                setattr(self._parameterNode, field, value)
        frames = volumeNode.GetImageData().GetDimensions()[2] if volumeNode.GetImageData() else 1
        self.ui.currentFrameSlider.maximum = max(0, frames - 1)

    def _progressCallbacks(self, title):
        """A progress dialog, the progress(fraction, message) callback and the cancel flag."""
        dialog = slicer.util.createProgressDialog(windowTitle=title, labelText=title, maximum=100)
        cancel = threading.Event()

        def progress(fraction, message):
            dialog.setValue(int(100 * fraction))
            dialog.setLabelText(message)
            slicer.app.processEvents()
            if dialog.wasCanceled:
                cancel.set()

        return dialog, progress, cancel

    def onApplyButton(self) -> None:
        if not ensureDependencies():
            return
        dialog, progress, cancel = self._progressCallbacks(_("IVUS reconstruction"))
        try:
            with slicer.util.tryWithErrorDisplay(_("Reconstruction failed."), waitCursor=True):
                self.logic.process(self._parameterNode, progress=progress, cancel=cancel)
                self._showOutputs()
        finally:
            dialog.close()

    def onUpdateFromSegmentation(self) -> None:
        if not ensureDependencies():
            return
        dialog, progress, cancel = self._progressCallbacks(_("Updating from the edited segmentation"))
        try:
            with slicer.util.tryWithErrorDisplay(_("Update failed."), waitCursor=True):
                self.logic.updateFromSegmentation(self._parameterNode, progress=progress, cancel=cancel)
                self._showOutputs()
        finally:
            dialog.close()

    def onPropagateEdits(self) -> None:
        if not ensureDependencies():
            return
        dialog, progress, cancel = self._progressCallbacks(_("Propagating the edited frames"))
        try:
            with slicer.util.tryWithErrorDisplay(_("Propagation failed."), waitCursor=True):
                self.logic.propagateEdits(self._parameterNode, progress=progress, cancel=cancel)
                self._showOutputs()
        finally:
            dialog.close()

    def _showOutputs(self) -> None:
        node = self._parameterNode
        if node.outputTable:
            self.logic.showChartAndTable()
        if self.logic.lastResult is not None:
            indices = self.logic.lastResult.poses.frame_index
            self.ui.currentFrameSlider.minimum = int(indices.min())
            self.ui.currentFrameSlider.maximum = int(indices.max())
        self._checkCanApply()

    def onCurrentFrameChanged(self, value) -> None:
        if self.logic.lastResult is not None:
            self.logic.showFrame(int(value))


#
# IVUSReconstructLogic
#


# parameter node field -> row of the range table (IVUSReconstructLib/limits.py)
PARAMETER_LIMITS = {o.parameter: o.field for o in ACQUISITION_OPTIONS}


class IVUSReconstructLogic(ScriptedLoadableModuleLogic):
    """Thin: nodes -> core types (mrml), pipeline.run_pipeline, core types -> nodes (mrml)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.lastResult = None
        self.outputNodes = {}

    def getParameterNode(self):
        return IVUSReconstructParameterNode(super().getParameterNode())

    # -- inputs

    def acquisitionFromVolume(self, volumeNode):
        """Frame rate, speed and spacing known for a volume, read by the library (mrml.acquisition_values:
        the attributes of an earlier run, or the DICOM header read exactly as the command line reads it)."""
        from IVUSReconstructLib import mrml
        from IVUSReconstructLib.errors import IVUSInputError

        uids = (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split()
        dicomPath = None
        if uids and getattr(slicer, "dicomDatabase", None):
            dicomPath = slicer.dicomDatabase.fileForInstance(uids[0]) or None
        try:
            values = mrml.acquisition_values(volumeNode, dicomPath)
        except IVUSInputError as exc:  # keep the fields the user can fill in; say why they are empty
            logging.warning("IVUSReconstruct: %s", exc)
            values = mrml.acquisition_values(volumeNode)
        facts = {o.parameter: float(values[o.field].value) for o in ACQUISITION_OPTIONS if o.field in values}
        if "frameRate" in facts:
            facts["frameRate"] = round(facts["frameRate"], 3)  # a readable spin box value
        return facts

    def _inputs(self, parameterNode):
        from IVUSReconstructLib import mrml

        node = parameterNode
        pullback = None
        if node.inputVolume:
            pullback = mrml.volume_node_to_pullback(
                node.inputVolume,
                pixel_spacing_mm=node.pixelSpacing or None,
                pullback_speed_mm_s=node.pullbackSpeed or None,
                frame_rate_hz=node.frameRate or None,
            )
        contours = None
        if node.inputContours:
            contours = mrml.segmentation_to_contours(node.inputContours, node.inputVolume)
        centerline = None
        if node.inputCenterline:
            if node.inputCenterline.IsA("vtkMRMLMarkupsCurveNode"):
                centerline = mrml.curve_node_to_centerline(node.inputCenterline, order=node.centerlineOrder)
            else:
                centerline = mrml.model_node_to_centerline(node.inputCenterline, order=node.centerlineOrder)
        landmarks = mrml.markups_to_landmarks(node.inputLandmarks) if node.inputLandmarks else ()
        return pullback, contours, centerline, landmarks

    @staticmethod
    def checkParameters(parameterNode):
        """Refuse acquisition fields outside the range table, naming the module field."""
        from IVUSReconstructLib import limits

        for name, field in PARAMETER_LIMITS.items():
            value = getattr(parameterNode, name)
            if value or name == "startMm":  # 0 means "from the data"
                limits.check(field, value, where="IVUS Reconstruct", name=f"'{LIMITS[field].label}'",
                             fix=limits.SLICER_FIXES[field])  # fmt: skip

    @staticmethod
    def _reworded(run):
        """Run ``run()``; an input error from the library gets its fix in the module's terms."""
        from IVUSReconstructLib import limits
        from IVUSReconstructLib.errors import IVUSInputError

        try:
            return run()
        except IVUSInputError as exc:
            raise IVUSInputError(limits.reworded(exc, limits.SLICER_FIXES)) from None

    def _options(self, parameterNode):
        from IVUSReconstructLib.pipeline import RunOptions

        node = parameterNode
        return RunOptions(
            pixel_spacing_mm=node.pixelSpacing or None,
            pullback_speed_mm_s=node.pullbackSpeed or None,
            frame_rate_hz=node.frameRate or None,
            start_mm=node.startMm,
            # curve_node_to_centerline has already put the points distal-first
            centerline_order="distal-first",
            align=node.align,
            mirror=node.mirror,
            gating=node.gating,
            territory=None if node.territory == "auto" else node.territory,
        )

    # -- processing

    def process(self, parameterNode, progress=None, cancel=None):
        """Run the pipeline on the parameter node's inputs and show the result as nodes.

        Returns the pipeline's RunResult.
        """
        from IVUSReconstructLib import pipeline

        self.checkParameters(parameterNode)
        pullback, contours, centerline, landmarks = self._inputs(parameterNode)
        result = self._reworded(lambda: pipeline.run_pipeline(
            pullback=pullback,
            contours=contours,
            centerline=centerline,
            landmarks=landmarks,
            options=self._options(parameterNode),
            input_paths={"pullback": parameterNode.inputVolume.GetName()} if parameterNode.inputVolume else {},
            progress=progress,
            cancel=cancel,
        ))  # fmt: skip
        self._show(parameterNode, result, segmentationNode=parameterNode.inputContours)
        return result

    def updateFromSegmentation(self, parameterNode, progress=None, cancel=None):
        """Re-read the (edited) output segmentation and recompute meshes and metrics."""
        from IVUSReconstructLib import mrml, pipeline

        if self.lastResult is None or not parameterNode.outputSegmentation:
            raise ValueError(_("Run the reconstruction first."))
        contours = mrml.segmentation_to_contours(
            parameterNode.outputSegmentation, parameterNode.inputVolume, template=self.lastResult.contours
        )
        self.checkParameters(parameterNode)
        pullback, _contours, centerline, landmarks = self._inputs(parameterNode)
        result = self._reworded(lambda: pipeline.run_pipeline(
            pullback=pullback,
            contours=contours,
            centerline=centerline or self.lastResult.centerline,
            landmarks=landmarks,
            options=self._options(parameterNode),
            progress=progress,
            cancel=cancel,
        ))  # fmt: skip
        self._show(parameterNode, result, segmentationNode=parameterNode.outputSegmentation)
        return result

    def propagateEdits(self, parameterNode, progress=None, cancel=None):
        """Treat the frames edited in the output segmentation as keyframes, segment the others
        again, and update the output nodes in place (the library does the work: mrml.propagate_edits)."""
        from IVUSReconstructLib import mrml, pipeline

        if self.lastResult is None or not parameterNode.outputSegmentation:
            raise ValueError(_("Run the reconstruction first."))
        self.checkParameters(parameterNode)
        pullback, _contours, centerline, landmarks = self._inputs(parameterNode)
        nodes = dict(self.outputNodes)
        nodes["segmentation"] = parameterNode.outputSegmentation
        nodes.setdefault("volume", parameterNode.inputVolume)
        result, _keys = self._reworded(lambda: mrml.propagate_edits(
            slicer.mrmlScene, nodes, self.lastResult,
            pullback=pullback, centerline=centerline or self.lastResult.centerline, landmarks=landmarks,
            options=self._options(parameterNode), progress=progress, cancel=cancel,
        ))  # fmt: skip
        self.outputNodes = nodes
        self.lastResult = result
        parameterNode.outputTable = nodes["table"]
        if parameterNode.outputFolder and str(parameterNode.outputFolder) not in ("", "."):
            pipeline.write_outputs(result, parameterNode.outputFolder, extra_writers=(mrml.write_scene,))
        return result

    def _show(self, parameterNode, result, segmentationNode=None):
        from IVUSReconstructLib import mrml, pipeline

        for role, node in self.outputNodes.items():
            if role not in ("volume", "segmentation") and node.GetScene() is not None:
                slicer.mrmlScene.RemoveNode(node)
        self.outputNodes = mrml.show_result(
            slicer.mrmlScene, result, volume_node=parameterNode.inputVolume, segmentation_node=segmentationNode
        )
        self.lastResult = result
        # moving a landing-zone line re-plans: the library and the adapter do the work
        for node, tag in getattr(self, "_planObservers", []):
            node.RemoveObserver(tag)
        self._planObservers = (
            mrml.observe_plan(self.outputNodes, result.metrics.per_frame, result.centerline.points_ras_mm)
            if "device" in self.outputNodes
            else []
        )
        parameterNode.outputSegmentation = self.outputNodes.get("segmentation")
        parameterNode.outputWallModel = self.outputNodes.get("wall") or self.outputNodes.get("vessel")
        parameterNode.outputTable = self.outputNodes["table"]
        if parameterNode.outputFolder and str(parameterNode.outputFolder) not in ("", "."):
            pipeline.write_outputs(result, parameterNode.outputFolder, extra_writers=(mrml.write_scene,))

    # -- views

    def showFrame(self, frame):
        """Show the frame at its place and angle in 3D: a posed one-slice volume in the Red slice view."""
        from IVUSReconstructLib import mrml

        result = self.lastResult
        if result is None or result.pullback is None:
            return
        node = self.outputNodes.get("frame")
        node = mrml.current_frame_volume_node(slicer.mrmlScene, result.pullback, result.poses, frame, node=node)
        self.outputNodes["frame"] = node
        row = list(result.poses.frame_index).index(int(node.GetAttribute(mrml.FRAME_ATTRIBUTE)))
        redComposite = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
        redComposite.SetBackgroundVolumeID(node.GetID())
        redSlice = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceNode()
        normal, axisX, origin = result.poses.normal_ras[row], result.poses.axes_ras[row][:, 0], result.poses.origin_ras_mm[row]
        redSlice.SetSliceToRASByNTP(*normal, *axisX, *origin, 0)
        redSlice.SetSliceVisible(True)

    def showChartAndTable(self):
        layoutManager = slicer.app.layoutManager()
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView)
        chart = self.outputNodes.get("chart")
        table = self.outputNodes.get("table")
        if chart:
            slicer.modules.plots.logic().ShowChartInLayout(chart)
        if table:
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()


#
# IVUSReconstructTest
#


class IVUSReconstructTest(ScriptedLoadableModuleTest):
    """Runs in Slicer (Reload and Test, or ctest via WITH_GENERIC_TESTS). The pytest suite
    Testing/mrml covers the adapter with slicer-core outside the application."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_IVUSReconstruct1()

    def test_IVUSReconstruct1(self):
        """Phantom -> module logic -> nodes; MLA marker and table agree with the pipeline."""
        from IVUSReconstructLib import mrml

        self.delayDisplay("Generating a short coronary phantom")
        volumeNode, curveNode = loadPhantom("coronary", lengthMm=5.0)
        logic = IVUSReconstructLogic()
        parameterNode = logic.getParameterNode()
        parameterNode.inputVolume = volumeNode
        parameterNode.inputCenterline = curveNode
        parameterNode.gating = "image"
        result = logic.process(parameterNode)

        table = parameterNode.outputTable
        self.assertEqual(table.GetNumberOfRows(), len(result.metrics.per_frame["frame"]))
        lumenAreas = [float(table.GetCellText(i, table.GetColumnIndex("lumen_area_mm2"))) for i in range(table.GetNumberOfRows())]
        for expected, got in zip(result.metrics.per_frame["lumen_area_mm2"], lumenAreas):
            self.assertAlmostEqual(float(expected), got, places=4)
        wall = parameterNode.outputWallModel
        self.assertEqual(wall.GetPolyData().GetNumberOfPoints(), (result.mesh.wall or result.mesh.vessel).GetNumberOfPoints())
        contours = mrml.segmentation_to_contours(parameterNode.outputSegmentation, volumeNode)
        self.assertEqual(len(contours.frames), len(result.contours.frames))
        self.delayDisplay("Test passed")
